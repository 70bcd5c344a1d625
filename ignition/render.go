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

// Render returns the machine's config as JSON in the image's spec version,
// validated with Ignition's own parser and validate package: everything but
// the per-boot values, which WithReport adds (Served does both). Problems it can
// attribute to a file of the site repo (a broken snippet, an unsupported
// spec version in images/x.yaml) are returned as a sites.Problems error with
// File, Field and Line set; anything else is an ordinary error.
func Render(in Input) ([]byte, error) {
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
		l, p := parseSnippet(sn, sp, im.Name)
		ps = append(ps, p...)
		layers = append(layers, l)
		if len(p) == 0 {
			paths, err := writtenPaths(l.cfg)
			if err != nil {
				return nil, fmt.Errorf("render ignition for %s: %w", m.Name, err)
			}
			snippetPaths = append(snippetPaths, paths...)
		}
	}
	if len(ps) > 0 {
		ps.Sort()
		return nil, ps
	}

	b, err := base(in, snippetPaths)
	if err != nil {
		return nil, fmt.Errorf("render ignition for %s: %w", m.Name, err)
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("render ignition for %s: marshal base: %w", m.Name, err)
	}
	cfg, rpt, err := sp.parse(raw)
	if err != nil || failing(rpt) {
		return nil, fmt.Errorf("render ignition for %s: generated base does not parse as %s (a bug in undercloud): %v %s", m.Name, sp.version, err, rpt)
	}
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

// Renderer implements sites.MachineRenderer for the validation gate.
type Renderer struct{}

// Render renders the machine as it would be served both before and after
// its site's bootstrap, per-boot values included (placeholders), checks
// each with Ignition's parser as served, and discards it: a version is
// accepted only if every config it can produce is valid. It also checks
// the snippets of the other role, so a broken worker.bu is refused even in
// a site that has no worker yet.
func (Renderer) Render(r *sites.Release, m *sites.Machine) error {
	for _, bootstrapped := range []bool{false, true} {
		out, err := Served(Input{Release: r, Machine: m, Bootstrapped: bootstrapped}, GatePerBoot(m, r.Version.Commit))
		if err != nil {
			return err
		}
		// Served refused an unsupported spec: the index is valid here.
		if _, rpt, err := specs()[specIndex(r.Image.Ignition)].parse(out); err != nil || failing(rpt) {
			return fmt.Errorf("render ignition for %s: config as served is invalid: %v %s", m.Name, err, rpt)
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
