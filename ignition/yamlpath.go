package ignition

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/undercloud/undercloud/sites"
	"gopkg.in/yaml.v3"
)

// yaml.v3 words a mistyped value as "line 6: cannot unmarshal !!str `abc`
// into int", cutting values longer than 10 bytes to 7 and "...".
var typeErrRE = regexp.MustCompile("^line (\\d+): (cannot unmarshal (!!\\w+)(?: `(.*)`)? into .*)$")

// otherErrRE catches the other entries of a yaml.v3 TypeError (a duplicate
// key, for one), which give a line but no value.
var otherErrRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// typeProblems turns the type error Butane's YAML decoding returns into one
// problem per mistyped value. yaml.v3 only gives a line; the field path is
// found by walking the snippet's YAML tree for the value on that line, so
// the author reads storage.files[0].mode rather than a Go type.
func typeProblems(sn sites.Snippet, te *yaml.TypeError) sites.Problems {
	var doc yaml.Node
	_ = yaml.Unmarshal(sn.Data, &doc) // it parsed already: butaneHeader
	var ps sites.Problems
	for _, e := range te.Errors {
		p := sites.Problem{File: sn.File, Message: "Butane: " + oneLine(e)}
		if m := typeErrRE.FindStringSubmatch(e); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Field = fieldAt(&doc, p.Line, m[3], m[4])
			p.Message = "Butane: " + m[2]
		} else if m := otherErrRE.FindStringSubmatch(e); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Field = fieldAt(&doc, p.Line, "", "")
			p.Message = "Butane: " + m[2]
		}
		ps = append(ps, p)
	}
	return ps
}

// fieldAt finds the path (storage.files[0].mode) of the last value in
// document order that starts on line and, when tag is set, has that tag and
// value as yaml.v3 printed it. The last is the deepest: "- path: x" starts a
// mapping and its path on the same line. "" if nothing matches.
func fieldAt(doc *yaml.Node, line int, tag, value string) string {
	found := ""
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n == nil {
			return
		}
		if n.Line == line && path != "" && (tag == "" || sameValue(n, tag, value)) {
			found = path
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if tag == "" && k.Line == line {
					found = p // a duplicate key names its key
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(doc, "")
	return found
}

// sameValue reports whether n is the value a yaml.v3 type error printed:
// the short tag, and for scalars the value, cut as yaml.v3 cuts it.
func sameValue(n *yaml.Node, tag, value string) bool {
	if n.ShortTag() != tag {
		return false
	}
	if n.Kind != yaml.ScalarNode {
		return true
	}
	if cut, ok := strings.CutSuffix(value, "..."); ok && len(n.Value) > 10 {
		return strings.HasPrefix(n.Value, cut)
	}
	return n.Value == value
}
