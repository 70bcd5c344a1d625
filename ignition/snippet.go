package ignition

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	butane "github.com/coreos/butane/config"
	"github.com/coreos/butane/config/common"
	butaneutil "github.com/coreos/butane/config/util"
	"github.com/coreos/ignition/v2/config/merge"
	ignutil "github.com/coreos/ignition/v2/config/util"
	"github.com/coreos/vcontext/json"
	"github.com/coreos/vcontext/path"
	"github.com/coreos/vcontext/report"
	"github.com/coreos/vcontext/tree"
	vyaml "github.com/coreos/vcontext/yaml"
	"github.com/undercloud/undercloud/sites"
	"gopkg.in/yaml.v3"
)

// layer is one snippet parsed into the target spec, with what is needed to
// point back into its source file when something goes wrong.
type layer struct {
	snippet    sites.Snippet
	cfg        any              // the snippet as a config of the target spec
	source     tree.Node        // the snippet's own JSON or YAML tree, for lines; may be nil
	transcript merge.Transcript // how the merge over the layers before it went
}

// field renders a config path the way the snippet's author wrote it:
// Butane keys are snake_case, Ignition's camelCase.
func (l layer) field(p []any) string {
	var b strings.Builder
	for _, e := range p {
		switch v := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", v)
		default:
			s := fmt.Sprint(v)
			if l.snippet.Kind == sites.SnippetButane {
				s = butaneutil.Snake(s)
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		}
	}
	return b.String()
}

// line finds the line of p (or of its deepest existing ancestor) in the
// snippet's source. For Butane this is best effort: Butane's sugar may
// generate entries that have no counterpart in the file.
func (l layer) line(p []any) int {
	if l.source == nil {
		return 0
	}
	tag := "json"
	if l.snippet.Kind == sites.SnippetButane {
		tag = "yaml"
	}
	cp := path.New(tag)
	for _, e := range p {
		if s, ok := e.(string); ok && tag == "yaml" {
			e = butaneutil.Snake(s)
		}
		cp = cp.Append(e)
	}
	for ; cp.Len() > 0; cp = cp.Pop() {
		if n, err := l.source.Get(cp); err == nil && n != nil {
			line, _ := n.Start()
			return int(line)
		}
	}
	return 0
}

// parseSnippet turns a Butane or Ignition snippet into a config of the
// target spec. Warnings count as problems: the gate is strict, and a
// warning (an unused key, a unit without [Install]) is usually a typo.
func parseSnippet(sn sites.Snippet, sp spec, image string) (layer, sites.Problems) {
	l := layer{snippet: sn}
	raw := sn.Data
	versionField, versionLine, origin := "ignition.version", 0, ""
	switch sn.Kind {
	case sites.SnippetIgnition:
		if t, err := json.UnmarshalToContext(raw); err == nil {
			l.source = t
			versionLine = l.line([]any{"ignition", "version"})
		}
	case sites.SnippetButane:
		hdr, ps := butaneHeader(sn)
		if len(ps) > 0 {
			return l, ps
		}
		if t, err := vyaml.UnmarshalToContext(raw); err == nil {
			l.source = t
		}
		// Raw: a plain Ignition config, never a wrapper (openshift's
		// MachineConfig). No FilesDir: a snippet cannot read server files.
		out, rpt, err := butane.TranslateBytes(raw, common.TranslateBytesOptions{Raw: true})
		var unknown common.ErrUnknownVersion
		if errors.As(err, &unknown) {
			return l, sites.Problems{{File: sn.File, Field: "version", Line: hdr.versionLine,
				Message: fmt.Sprintf("Butane variant %s version %s is unknown to this server's Butane", hdr.variant, hdr.version)}}
		}
		if ps := reportProblems(l, rpt, true); len(ps) > 0 || err != nil {
			var te *yaml.TypeError
			switch {
			case len(ps) > 0:
			case errors.As(err, &te):
				ps = typeProblems(sn, te)
			default:
				ps = sites.Problems{{File: sn.File, Line: errLine(err), Message: "Butane: " + oneLine(err.Error())}}
			}
			return l, ps
		}
		raw = out
		versionField, versionLine = "version", hdr.versionLine
		origin = fmt.Sprintf(" (from Butane %s %s)", hdr.variant, hdr.version)
	default:
		return l, sites.Problems{{File: sn.File, Message: fmt.Sprintf("unknown snippet kind %q", sn.Kind)}}
	}

	v, rpt, err := ignutil.GetConfigVersion(raw)
	if err != nil {
		if ps := reportProblems(l, rpt, sn.Kind == sites.SnippetIgnition); len(ps) > 0 {
			return l, ps
		}
		return l, sites.Problems{{File: sn.File, Field: versionField, Line: versionLine, Message: "Ignition: " + err.Error()}}
	}
	switch i := specIndex(v.String()); {
	case i < 0:
		return l, sites.Problems{{File: sn.File, Field: versionField, Line: versionLine,
			Message: fmt.Sprintf("snippet spec %s%s is not a supported Ignition spec (supported: %s)", v, origin, strings.Join(SupportedSpecs(), ", "))}}
	case i > specIndex(sp.version):
		return l, sites.Problems{{File: sn.File, Field: versionField, Line: versionLine,
			Message: fmt.Sprintf("snippet spec %s%s is newer than image %s's %s", v, origin, image, sp.version)}}
	}
	cfg, rpt, err := sp.parse(raw)
	// For Butane, these entries and their markers point into Butane's
	// output; l maps them back to the source's keys and lines as well as
	// it can.
	ps := reportProblems(l, rpt, sn.Kind == sites.SnippetIgnition)
	if len(ps) == 0 && err != nil {
		ps = sites.Problems{{File: sn.File, Message: "Ignition: " + err.Error()}}
	}
	l.cfg = cfg
	if len(ps) == 0 {
		ps = escapes(l)
	}
	return l, ps
}

type header struct {
	variant, version string
	versionLine      int
}

// butaneHeader reads variant and version, which select the translator.
func butaneHeader(sn sites.Snippet) (header, sites.Problems) {
	var doc yaml.Node
	if err := yaml.Unmarshal(sn.Data, &doc); err != nil {
		return header{}, sites.Problems{{File: sn.File, Line: errLine(err), Message: "not valid YAML: " + oneLine(err.Error())}}
	}
	var h header
	if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			switch k, v := m.Content[i], m.Content[i+1]; k.Value {
			case "variant":
				h.variant = v.Value
			case "version":
				h.version, h.versionLine = v.Value, v.Line
			}
		}
	}
	if h.variant == "" || h.version == "" {
		return h, sites.Problems{{File: sn.File, Line: 1, Message: "a Butane snippet starts with variant and version (e.g. variant: fcos, version: 1.6.0)"}}
	}
	return h, nil
}

// failing reports whether a report has an error or a warning.
func failing(r report.Report) bool {
	for _, e := range r.Entries {
		if e.Kind == report.Error || e.Kind == report.Warn {
			return true
		}
	}
	return false
}

// reportProblems turns the errors and warnings of an Ignition or Butane
// report into problems on the layer's file. When the report was correlated
// with the snippet's own text (markers), its lines are used; else the layer
// looks them up.
func reportProblems(l layer, r report.Report, markers bool) sites.Problems {
	var ps sites.Problems
	for _, e := range r.Entries {
		if e.Kind != report.Error && e.Kind != report.Warn {
			continue
		}
		// A warning blocks the version like an error does, so it is not
		// called one: "warning:" would tell the author it is optional.
		p := sites.Problem{File: l.snippet.File, Field: l.field(e.Context.Path), Message: oneLine(e.Message)}
		if line, _ := e.Marker.Start(); markers && line > 0 {
			p.Line = int(line)
		} else {
			p.Line = l.line(e.Context.Path)
		}
		ps = append(ps, p)
	}
	return ps
}

var lineRE = regexp.MustCompile(`line (\d+)`)

// errLine digs the line out of a YAML error message, 0 if it has none.
func errLine(err error) int {
	if err == nil {
		return 0
	}
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// attribute traces the failing entries of the merged config's report back
// through the merge transcripts to the snippet that contributed the value.
// It returns nil if any entry comes from the generated base: that is a bug
// here, not a problem of the site repo.
func attribute(r report.Report, layers []layer) sites.Problems {
	var ps sites.Problems
	for _, e := range r.Entries {
		if e.Kind != report.Error && e.Kind != report.Warn {
			continue
		}
		i, p := origin(e.Context.Path, layers)
		if i < 0 {
			return nil
		}
		l := layers[i]
		// Warnings block too; see reportProblems.
		ps = append(ps, sites.Problem{File: l.snippet.File, Field: l.field(p), Line: l.line(p),
			Message: e.Message + " (once merged over the generated config)"})
	}
	return ps
}

// origin finds which layer a path of the merged config came from, and its
// path there; -1 means the generated base. Layer k's transcript maps its
// result to "parent" (everything before it) and "child" (layer k itself).
func origin(p []any, layers []layer) (int, []any) {
	for k := len(layers) - 1; k >= 0; k-- {
		from, child, ok := lookup(layers[k].transcript, p)
		if !ok {
			return -1, nil
		}
		if child {
			return k, from
		}
		p = from
	}
	return -1, nil
}

// lookup finds the source of p in a transcript, or of its deepest mapped
// ancestor (then the rest of p is carried over). The child wins when both
// contributed: a snippet that changed a value is the likelier culprit.
func lookup(t merge.Transcript, p []any) (from []any, child, ok bool) {
	for n := len(p); n > 0; n-- {
		for _, m := range t.Mappings {
			if !samePath(m.To.Path, p[:n]) {
				continue
			}
			if !ok || m.From.Tag == merge.TAG_CHILD {
				from = append(append([]any(nil), m.From.Path...), p[n:]...)
				child, ok = m.From.Tag == merge.TAG_CHILD, true
			}
		}
		if ok {
			return from, child, true
		}
	}
	return nil, false, false
}

func samePath(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// oneLine flattens a multi-line library message (yaml.v3 lists unmarshal
// errors on indented lines) for the one-line problem format.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "yaml: ", "")), " ")
}
