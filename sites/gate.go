package sites

import (
	"context"
	"fmt"
	"sort"
)

// MachineRenderer renders and validates one machine's Ignition config. The
// gate calls it for every machine so that nothing that fails to render is ever
// accepted; the ignition package implements it. An error that is a Problems
// value keeps its file and field; any other error is reported on the machine.
type MachineRenderer interface {
	Render(r *Release, m *Machine) error
}

// ArtifactChecker makes sure an image artifact can be had with its digest,
// importing it where it will be served from.
type ArtifactChecker interface {
	CheckArtifact(ctx context.Context, a Artifact) error
}

// Gate is the validation gate: a version becomes a site's active version only
// if Check reports no problem. Nil fields skip their checks (the CLI may have
// no artifact store), never the form and address checks.
type Gate struct {
	Renderer  MachineRenderer
	Artifacts ArtifactChecker
}

// Check validates the named sites of cfg (a version of the repo), against
// each other and against others: the sites the server serves from other
// versions, keyed by name (a site in names is never compared with its own
// entry in others). It returns every problem found, sorted.
func (g Gate) Check(ctx context.Context, cfg *Config, names []string, v Version, others map[string]*Site) Problems {
	var ps Problems
	used := map[string]bool{}
	for _, name := range names {
		s, ok := cfg.Sites[name]
		if !ok {
			ps = append(ps, problemf(sitesDir+"/"+name+"/"+siteFile, "", 0, "site %q has no %s at %s", name, siteFile, v.Label()))
			continue
		}
		ps = append(ps, checkSite(s, cfg.Images)...)
		used[s.Image] = true
		if s.DiscoveryImage != "" {
			used[s.DiscoveryImage] = true
		}
	}
	for _, im := range cfg.Images {
		ps = append(ps, checkImage(im)...)
	}
	ps = append(ps, checkUnique(cfg, names, others)...)
	if len(ps) == 0 {
		ps = append(ps, g.checkArtifacts(ctx, cfg, used)...)
		ps = append(ps, g.render(cfg, names, v)...)
	}
	ps = dedupe(ps)
	ps.Sort()
	return ps
}

// checkArtifacts fetches (or finds) every artifact of the images in use and
// checks its digest. Only used images are fetched: a catalog can hold many.
func (g Gate) checkArtifacts(ctx context.Context, cfg *Config, used map[string]bool) Problems {
	if g.Artifacts == nil {
		return nil
	}
	var ps Problems
	for _, name := range sortedKeys(used) {
		im := cfg.Images[name]
		if im == nil {
			continue
		}
		for _, a := range im.Artifacts.List() {
			if err := g.Artifacts.CheckArtifact(ctx, a.Artifact); err != nil {
				f := "artifacts." + a.Name
				ps = append(ps, problemf(im.File, f, im.Line(f), "%v", err))
			}
		}
	}
	return ps
}

// render renders every machine of every named site; it runs only on configs
// that passed the form checks, so a broken address plan is reported once,
// not again as a render failure per machine.
func (g Gate) render(cfg *Config, names []string, v Version) Problems {
	if g.Renderer == nil {
		return nil
	}
	var ps Problems
	for _, name := range names {
		rel, err := cfg.Release(name, v)
		if err != nil {
			continue
		}
		for i := range rel.Site.Machines {
			m := &rel.Site.Machines[i]
			err := g.Renderer.Render(rel, m)
			if err == nil {
				continue
			}
			if rp, ok := err.(Problems); ok {
				ps = append(ps, rp...)
				continue
			}
			f := fmt.Sprintf("machines[%d]", i)
			ps = append(ps, problemf(rel.Site.File, f, rel.Site.Line(f), "Ignition config for %s: %v", m.Name, err))
		}
	}
	return ps
}

// checkUnique finds MACs, IPs and host names used twice, within a site or
// across sites: two machines answering to one MAC would get each other's
// configs, secrets included.
func checkUnique(cfg *Config, names []string, others map[string]*Site) Problems {
	type owner struct {
		site, machine, file string
	}
	var ps Problems
	seen := map[string]owner{}
	claim := func(s *Site, i int, kind, field, value string, report bool) {
		key := kind + "\x00" + value
		m := s.Machines[i]
		if prev, ok := seen[key]; ok {
			if report {
				f := fmt.Sprintf("machines[%d].%s", i, field)
				where := prev.file
				if prev.site == s.Name {
					where = "this file"
				}
				ps = append(ps, problemf(s.File, f, s.Line(f), "%s %s is already used by %s/%s (%s)", kind, value, prev.site, prev.machine, where))
			}
			return
		}
		seen[key] = owner{s.Name, m.Name, s.File}
	}
	each := func(s *Site, report bool) {
		for i, m := range s.Machines {
			if m.MAC != "" {
				claim(s, i, "MAC", "mac", string(m.MAC), report)
			}
			if m.IP.IsValid() {
				claim(s, i, "IP", "ip", m.IP.String(), report)
			}
			if m.Name != "" {
				claim(s, i, "host name", "name", m.Name, report)
			}
		}
	}
	checking := map[string]bool{}
	for _, n := range names {
		checking[n] = true
	}
	// Other sites first, so a conflict is reported on the candidate.
	for _, n := range sortedKeys(others) {
		if !checking[n] && others[n] != nil {
			each(others[n], false)
		}
	}
	for _, n := range names {
		if s := cfg.Sites[n]; s != nil {
			each(s, true)
		}
	}
	return ps
}

func dedupe(ps Problems) Problems {
	seen := map[string]bool{}
	out := ps[:0]
	for _, p := range ps {
		k := p.String()
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}
