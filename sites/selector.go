package sites

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Label keys and values follow Kubernetes' spelling so that the labels of a
// machine can be copied to its node as they are: a key is 1 to 63 letters,
// digits and ._/-, a value 0 to 63 letters, digits and ._-. Neither may hold
// the , and = of a selector.
var (
	labelKeyRE   = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,63}$`)
	labelValueRE = regexp.MustCompile(`^[A-Za-z0-9._-]{0,63}$`)
)

// Selector keys that match a machine's own fields rather than its labels,
// so a label of that name would never be matched.
const (
	SelectName = "name"
	SelectRole = "role"
)

// checkLabel returns what is wrong with a label key and value, "" if
// nothing.
func checkLabel(key, value string) string {
	switch {
	case !labelKeyRE.MatchString(key):
		return fmt.Sprintf("label key %q must be 1 to 63 letters, digits, '.', '_', '/' or '-'", key)
	case key == SelectName || key == SelectRole:
		return fmt.Sprintf("label key %q is reserved: selectors match %s against the machine's own %s field", key, key, key)
	case !labelValueRE.MatchString(value):
		return fmt.Sprintf("label value %q must be at most 63 letters, digits, '.', '_' or '-'", value)
	}
	return ""
}

// Selector picks machines by their labels, name and role: every term must
// match. The zero Selector matches every machine.
type Selector struct {
	terms []selectorTerm
}

type selectorTerm struct{ key, value string }

// ParseSelector parses comma-separated key=value terms
// ("rack=r12,role=worker"). The keys name and role match the machine's
// name and role; any other key matches the label of that key. An empty
// string is the zero Selector.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	if strings.TrimSpace(s) == "" {
		return sel, nil
	}
	for i, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		key, value, ok := strings.Cut(t, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case t == "":
			return Selector{}, fmt.Errorf("selector %q: term %d is empty (want key=value[,key=value...])", s, i+1)
		case !ok:
			return Selector{}, fmt.Errorf("selector %q: term %q has no '=' (want key=value)", s, t)
		case !labelKeyRE.MatchString(key):
			return Selector{}, fmt.Errorf("selector %q: term %q: key %q must be 1 to 63 letters, digits, '.', '_', '/' or '-'", s, t, key)
		case !labelValueRE.MatchString(value):
			return Selector{}, fmt.Errorf("selector %q: term %q: value %q must be at most 63 letters, digits, '.', '_' or '-'", s, t, value)
		case key == SelectRole && !Role(value).Valid():
			return Selector{}, fmt.Errorf("selector %q: term %q: unknown role %q (want master or worker)", s, t, value)
		}
		if j := slices.IndexFunc(sel.terms, func(o selectorTerm) bool { return o.key == key }); j >= 0 {
			return Selector{}, fmt.Errorf("selector %q: key %q appears twice, and a machine has one %s", s, key, key)
		}
		sel.terms = append(sel.terms, selectorTerm{key, value})
	}
	return sel, nil
}

// Matches reports whether m matches every term of the selector.
func (sel Selector) Matches(m Machine) bool {
	for _, t := range sel.terms {
		var have string
		var ok bool
		switch t.key {
		case SelectName:
			have, ok = m.Name, true
		case SelectRole:
			have, ok = string(m.Role), true
		default:
			have, ok = m.Labels[t.key]
		}
		if !ok || have != t.value {
			return false
		}
	}
	return true
}

// IsZero reports whether the selector has no term: it matches everything.
func (sel Selector) IsZero() bool { return len(sel.terms) == 0 }

// String returns the selector as ParseSelector reads it, terms in the
// order given.
func (sel Selector) String() string {
	s := make([]string, len(sel.terms))
	for i, t := range sel.terms {
		s[i] = t.key + "=" + t.value
	}
	return strings.Join(s, ",")
}

// Selection picks the machines of a site an action applies to: those the
// Selector matches and, when Machines is not empty, only those named there.
// The zero Selection picks every machine.
type Selection struct {
	Selector Selector
	Machines []string // machine names
}

// IsZero reports whether the selection picks every machine.
func (s Selection) IsZero() bool { return s.Selector.IsZero() && len(s.Machines) == 0 }

// Matches reports whether the selection picks m.
func (s Selection) Matches(m Machine) bool {
	return s.Selector.Matches(m) && (len(s.Machines) == 0 || slices.Contains(s.Machines, m.Name))
}

// String describes the selection for an operator: "rack=r12",
// "machines=lab-w1,lab-w2", both separated by a space, or "" for the zero
// Selection.
func (s Selection) String() string {
	var parts []string
	if !s.Selector.IsZero() {
		parts = append(parts, s.Selector.String())
	}
	if len(s.Machines) > 0 {
		parts = append(parts, "machines="+strings.Join(s.Machines, ","))
	}
	return strings.Join(parts, " ")
}
