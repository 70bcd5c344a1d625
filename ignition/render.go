package ignition

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/coreos/ignition/v2/config/merge"
	"github.com/undercloud/undercloud/sites"
)

// Input is everything one machine's config depends on.
type Input struct {
	Release *sites.Release // site + image + version
	Machine *sites.Machine // one machine of Release.Site
	// Bootstrapped is false while the site's etcd cluster is being created:
	// masters get --initial-cluster-state new; true once the site has been
	// bootstrapped: existing. (A re-imaged master that says new can wipe a
	// cluster.)
	Bootstrapped bool
}

// UsesBootstrapped reports whether in's config depends on Bootstrapped:
// only a master's does (its etcd flags). A cache of configs need not tell
// the others' two apart.
func (in Input) UsesBootstrapped() bool {
	return in.Machine != nil && in.Machine.Role == sites.RoleMaster
}

// Render returns the machine's config as JSON in the image's spec version,
// validated with Ignition's own parser and validate package: everything but
// the per-boot values, which WithReport adds (Served does both). Problems it can
// attribute to a file of the site repo (a broken snippet, an unsupported
// spec version in images/x.yaml) are returned as a sites.Problems error with
// File, Field and Line set; anything else is an ordinary error.
func Render(in Input) ([]byte, error) { return render(in, nil) }

// render is Render, with the snippets parsed by c (nil: parsed here).
func render(in Input, c *Snippets) ([]byte, error) {
	if in.Release == nil || in.Release.Site == nil || in.Release.Image == nil || in.Machine == nil {
		return nil, errors.New("render ignition: incomplete input (release, site, image and machine are required)")
	}
	im, s, m := in.Release.Image, in.Release.Site, in.Machine
	idx := specIndex(im.Ignition)
	if idx < 0 {
		return nil, sites.Problems{{File: im.File, Field: "ignition", Line: im.Line("ignition"),
			Message: fmt.Sprintf("Ignition spec %q is not supported (supported: %s)", im.Ignition, strings.Join(SupportedSpecs(), ", "))}}
	}
	sp := specs()[idx]

	// Snippets: common, then the role's; each merged over what came before.
	// Parsed first: the generated part's reporter lists what they write.
	var layers []layer
	var ps sites.Problems
	var snippetPaths []string
	for _, scope := range []string{"common", string(m.Role)} {
		sn, ok := s.Snippets[scope]
		if !ok {
			continue
		}
		p := c.parse(sn, sp, im.Name)
		if p.err != nil {
			return nil, fmt.Errorf("render ignition for %s: %w", m.Name, p.err)
		}
		ps = append(ps, p.problems...)
		layers = append(layers, p.layer)
		snippetPaths = append(snippetPaths, p.paths...)
	}
	if len(ps) > 0 {
		ps.Sort()
		return nil, ps
	}

	b, err := base(in, snippetPaths)
	if err != nil {
		return nil, fmt.Errorf("render ignition for %s: %w", m.Name, err)
	}
	// Carried up to the image's spec by Ignition's translators; validated
	// below with the snippets merged, as served.
	cfg := sp.up(b)
	for i := range layers {
		cfg, layers[i].transcript = merge.MergeStructTranscribe(cfg, layers[i].cfg)
	}

	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render ignition for %s: marshal: %w", m.Name, err)
	}
	out = append(out, '\n')
	// The last word is Ignition's: the bytes we serve must parse, as exactly
	// the image's version, without errors or warnings.
	final, rpt, err := sp.parse(out)
	if err != nil || failing(rpt) {
		if ps := attribute(rpt, layers); len(ps) > 0 {
			return nil, ps
		}
		return nil, fmt.Errorf("render ignition for %s: merged config is invalid: %v %s", m.Name, err, rpt)
	}
	if v := configVersion(final); v != im.Ignition {
		return nil, fmt.Errorf("render ignition for %s: produced spec %q, image %s wants %q", m.Name, v, im.Name, im.Ignition)
	}
	return out, nil
}

// configVersion reads ignition.version from a parsed config of any spec.
func configVersion(cfg any) string {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return ""
	}
	var v struct {
		Ignition struct{ Version string }
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	return v.Ignition.Version
}

// Served is the config a machine is served for one boot: Render's, with
// pb's values added by WithReport.
func Served(in Input, pb PerBoot) ([]byte, error) {
	out, err := Render(in)
	if err != nil {
		return nil, err
	}
	out, err = WithReport(out, pb)
	if err != nil {
		return nil, fmt.Errorf("render ignition for %s: %w", in.Machine.Name, err)
	}
	return out, nil
}

// GatePerBoot stands for the per-boot values when the gate checks a
// config: shaped like a served boot's, credentials and server unknown.
func GatePerBoot(m *sites.Machine, version string) PerBoot {
	q := "?mac=" + string(m.MAC) + "&version=" + version + "&token="
	return PerBoot{
		BootID:       "<boot-id>",
		BootedURL:    "http://undercloud.invalid/booted" + q + "<boot-token>",
		HeartbeatURL: "http://undercloud.invalid/heartbeat" + q + "<heartbeat-credential>",
	}
}

// Renderer implements sites.MachineRenderer for the validation gate. The
// zero value renders and discards.
type Renderer struct {
	// Snippets, if set, parses each snippet once for all the machines.
	Snippets *Snippets
	// Rendered, if set, is given each config the gate rendered and found
	// valid, as Render returns it (before the per-boot values): the
	// server keeps them so that a machine's first request need not render
	// its config again. It is called before the version is accepted, so
	// it may be given configs of a version that is then refused.
	Rendered func(in Input, out []byte)
}

// Render renders the machine as it would be served both before and after
// its site's bootstrap, per-boot values included (placeholders), checks
// each with Ignition's parser as served, and discards it: a version is
// accepted only if every config it can produce is valid. It also checks
// the snippets of the other role, so a broken worker.bu is refused even in
// a site that has no worker yet.
func (g Renderer) Render(r *sites.Release, m *sites.Machine) error {
	for _, bootstrapped := range []bool{false, true} {
		in := Input{Release: r, Machine: m, Bootstrapped: bootstrapped}
		rendered, err := g.Snippets.Render(in)
		if err != nil {
			return err
		}
		// What Served does, keeping Render's part.
		out, err := WithReport(rendered, GatePerBoot(m, r.Version.Commit))
		if err != nil {
			return fmt.Errorf("render ignition for %s: %w", m.Name, err)
		}
		// Served refused an unsupported spec: the index is valid here.
		if _, rpt, err := specs()[specIndex(r.Image.Ignition)].parse(out); err != nil || failing(rpt) {
			return fmt.Errorf("render ignition for %s: config as served is invalid: %v %s", m.Name, err, rpt)
		}
		if g.Rendered != nil {
			g.Rendered(in, rendered)
		}
	}
	idx := specIndex(r.Image.Ignition)
	if idx < 0 {
		return nil // unreachable: Render refused the spec above
	}
	sp := specs()[idx]
	var ps sites.Problems
	for _, scope := range sites.SnippetScopes {
		if sn, ok := r.Site.Snippets[scope]; ok && scope != "common" && scope != string(m.Role) {
			_, p := parseSnippet(sn, sp, r.Image.Name)
			ps = append(ps, p...)
		}
	}
	if len(ps) > 0 {
		ps.Sort()
		return ps
	}
	return nil
}

var _ sites.MachineRenderer = Renderer{}
