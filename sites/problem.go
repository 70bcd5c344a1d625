package sites

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one reason a config version is not acceptable. Every check of the
// validation gate reports one Problem per failure, naming the file, the field
// (a path such as machines[1].ip) and, where there is one, the offending value,
// so the author of a site repo pull request can fix it without guessing.
type Problem struct {
	File    string // path inside the site repo, e.g. sites/lab/site.yaml
	Field   string // dotted path with indexes, e.g. machines[1].ip; empty for the whole file
	Line    int    // 1-based line in File when known, else 0
	Message string
}

// String renders the problem as the one-line form used by `undercloud
// validate`: file:field: message (line N).
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Field != "" {
		b.WriteString(":")
		b.WriteString(p.Field)
	}
	b.WriteString(": ")
	b.WriteString(p.Message)
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	return b.String()
}

// Problems is a list of problems that is also an error, so a renderer or a
// loader can return precise reasons through an ordinary error value.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Sort orders problems by file, then line, then field, so output is stable.
func (ps Problems) Sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Field < b.Field
	})
}

// problemf is shorthand for the checks.
func problemf(file, field string, line int, format string, args ...any) Problem {
	return Problem{File: file, Field: field, Line: line, Message: fmt.Sprintf(format, args...)}
}
