package web

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// apiDoc is the part of the OpenAPI document docs/api.md is checked against.
type apiDoc struct {
	Paths map[string]map[string]struct {
		Responses map[string]struct {
			Content map[string]struct {
				Schema schema `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"paths"`
	Components struct {
		Schemas map[string]schema `json:"schemas"`
	} `json:"components"`
}

type schema struct {
	Ref        string            `json:"$ref"`
	Type       string            `json:"type"`
	Items      *schema           `json:"items"`
	Properties map[string]schema `json:"properties"`
	AllOf      []schema          `json:"allOf"`
}

// fields names a schema's properties as docs/api.md's shapes do: its own,
// and "…Event" for all of Event's (an allOf of Event and more).
func (s schema) fields() []string {
	var out []string
	for name := range s.Properties {
		out = append(out, name)
	}
	for _, a := range s.AllOf {
		if a.Ref != "" {
			out = append(out, "…"+a.shape())
		}
		out = append(out, a.fields()...)
	}
	slices.Sort(out)
	return out
}

// shape writes a response schema the way docs/api.md's table does:
// Rollout, {machines: [Machine], next: string}.
func (s schema) shape() string {
	switch {
	case s.Ref != "":
		return strings.TrimPrefix(s.Ref, "#/components/schemas/")
	case s.Items != nil:
		return "[" + s.Items.shape() + "]"
	case len(s.Properties) > 0:
		var fields []string
		for name, p := range s.Properties {
			fields = append(fields, name+": "+p.shape())
		}
		sort.Strings(fields)
		return "{" + strings.Join(fields, ", ") + "}"
	}
	return s.Type
}

// refs adds the schemas s names, and those they name, to seen.
func (d *apiDoc) refs(s schema, seen map[string]bool) {
	if s.Ref != "" {
		name := strings.TrimPrefix(s.Ref, "#/components/schemas/")
		if seen[name] {
			return
		}
		seen[name] = true
		d.refs(d.Components.Schemas[name], seen)
	}
	if s.Items != nil {
		d.refs(*s.Items, seen)
	}
	for _, p := range s.Properties {
		d.refs(p, seen)
	}
	for _, a := range s.AllOf {
		d.refs(a, seen)
	}
}

// TestAPIDocMatchesOpenAPI: docs/api.md lists every path and method of the
// OpenAPI document and nothing else, each with the shape of its successful
// answer, and gives the fields of every schema an answer holds.
func TestAPIDocMatchesOpenAPI(t *testing.T) {
	var doc apiDoc
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]string{} // "GET /api/v1/sites" -> "200 {sites: [Site]}"
	answers := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			var shapes []string
			for code, r := range op.Responses {
				if !strings.HasPrefix(code, "2") {
					continue
				}
				for ctype, c := range r.Content {
					s := ctype
					if ctype == "application/json" {
						s = c.Schema.shape()
						doc.refs(c.Schema, answers)
					}
					shapes = append(shapes, code+" "+s)
				}
			}
			slices.Sort(shapes)
			want[strings.ToUpper(method)+" "+path] = strings.Join(shapes, ", ")
		}
	}

	row := regexp.MustCompile(`^\| *(GET|POST|PUT|PATCH|DELETE) *\| *([^ |?]+)[^|]*\|[^|]*\| *([^|]*?) *\|`)
	got := map[string]string{}
	for _, line := range strings.Split(string(md), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			got[m[1]+" "+m[2]] = strings.Trim(m[3], "`")
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("docs/api.md's table (+) against openapi.json (-): method, path and answer:\n%s", diff)
	}

	// "- `Name`: field, field, ..." under "## Shapes", one per schema an
	// answer holds.
	fields := regexp.MustCompile("^- `(\\w+)`: (.*)$")
	documented := map[string][]string{}
	_, shapes, _ := strings.Cut(string(md), "\n## Shapes\n")
	for _, line := range strings.Split(shapes, "\n") {
		if m := fields.FindStringSubmatch(line); m != nil {
			var names []string
			for _, f := range strings.Split(m[2], ", ") {
				names = append(names, strings.Trim(strings.Fields(f + " ")[0], "`"))
			}
			slices.Sort(names)
			documented[m[1]] = names
		}
	}
	wantFields := map[string][]string{}
	for name := range answers {
		wantFields[name] = doc.Components.Schemas[name].fields()
	}
	if diff := cmp.Diff(wantFields, documented); diff != "" {
		t.Errorf("docs/api.md's shapes (+) against openapi.json's schemas (-):\n%s", diff)
	}
}
