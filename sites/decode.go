package sites

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder turns one YAML file into a Go value strictly: unknown fields, wrong
// types and missing required fields each become a Problem naming the file, the
// field path and the line. yaml.v3's own errors give a line but not the path,
// and stop at the first mismatch; operators fixing a site file want all of them.
//
// Struct fields are matched by their `yaml:"name"` tag; the option
// `,required` makes an absent or empty field a problem. Leaves may be string,
// bool, int, or any type implementing encoding.TextUnmarshaler (netip.Addr,
// netip.Prefix, Duration).
type decoder struct {
	file     string
	problems Problems
	lines    map[string]int // field path -> line, for later semantic checks
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, lines: map[string]int{}}
}

// decodeFile parses data into out (a pointer) and returns the problems and the
// line of every field path seen.
func decodeFile(file string, data []byte, out any) (map[string]int, Problems) {
	d := newDecoder(file)
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return d.lines, Problems{{File: file, Message: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		d.value(&yaml.Node{Kind: yaml.MappingNode, Line: 1}, reflect.ValueOf(out).Elem(), "")
		return d.lines, d.problems
	}
	d.value(doc.Content[0], reflect.ValueOf(out).Elem(), "")
	return d.lines, d.problems
}

func (d *decoder) addf(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problems = append(d.problems, problemf(d.file, path, line, format, args...))
}

var textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.lines[path] = n.Line
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // explicit null leaves the zero value
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, v.Elem(), path)
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshaler) {
		if n.Kind != yaml.ScalarNode {
			d.addf(n, path, "want a single value, got %s", kindName(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.addf(n, path, "%q: %v", n.Value, cleanErr(err))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structValue(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.addf(n, path, "want a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.value(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.addf(n, path, "want a mapping, got %s", kindName(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kp := join(path, k.Value)
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.addf(k, kp, "appears twice")
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			d.value(val, e, kp)
			d.lines[kp] = k.Line
			m.SetMapIndex(reflect.ValueOf(k.Value), e)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.addf(n, path, "want a string, got %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.addf(n, path, "want true or false, got %q", n.Value)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.addf(n, path, "want a whole number, got %q", n.Value)
			return
		}
		v.SetInt(i)
	default:
		d.addf(n, path, "unsupported field type %s (a bug in undercloud)", v.Type())
	}
}

func (d *decoder) structValue(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "want a mapping, got %s", kindName(n))
		return
	}
	type field struct {
		index    int
		required bool
	}
	fields := map[string]field{}
	var names []string
	t := v.Type()
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fields[name] = field{index: i, required: opts == "required"}
		names = append(names, name)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		f, ok := fields[k.Value]
		if !ok {
			d.addf(k, kp, "unknown field (known: %s)", strings.Join(names, ", "))
			continue
		}
		if seen[k.Value] {
			d.addf(k, kp, "appears twice")
			continue
		}
		seen[k.Value] = true
		d.value(val, v.Field(f.index), kp)
		d.lines[kp] = k.Line // the key's line: where a block value's problem is reported
	}
	for _, name := range names {
		f := fields[name]
		if f.required && (!seen[name] || v.Field(f.index).IsZero()) {
			d.addf(n, join(path, name), "required field is missing or empty")
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// cleanErr strips the package prefixes netip puts on parse errors, which
// repeat the value the problem already quotes.
func cleanErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "): "); i >= 0 {
		return s[i+3:]
	}
	return s
}
