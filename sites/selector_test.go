package sites

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSelector(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    string // String() of the result
		wantErr string // a part of the error
	}{
		"empty":               {in: "", want: ""},
		"blank":               {in: "  ", want: ""},
		"one label":           {in: "rack=r12", want: "rack=r12"},
		"label and role":      {in: "rack=r12,role=worker", want: "rack=r12,role=worker"},
		"spaces around terms": {in: " rack = r12 , zone=eu-1 ", want: "rack=r12,zone=eu-1"},
		"prefixed key":        {in: "example.com/zone=a", want: "example.com/zone=a"},
		"empty value":         {in: "gpu=", want: "gpu="},
		"no equals":           {in: "rack=r12,worker", wantErr: `term "worker" has no '='`},
		"empty term":          {in: "rack=r12,", wantErr: "term 2 is empty"},
		"empty key":           {in: "=r12", wantErr: `key "" must be 1 to 63`},
		"bad key":             {in: "rack id=r12", wantErr: `key "rack id" must be`},
		"long key":            {in: strings.Repeat("k", 64) + "=v", wantErr: "must be 1 to 63"},
		"bad value":           {in: "rack=r12=r13", wantErr: `value "r12=r13" must be at most 63`},
		"unknown role":        {in: "role=etcd", wantErr: `unknown role "etcd"`},
		"key twice":           {in: "rack=r1,rack=r2", wantErr: `key "rack" appears twice`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sel, err := ParseSelector(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseSelector(%q) = %v, %v; want an error with %q", tc.in, sel, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSelector(%q): %v", tc.in, err)
			}
			if got := sel.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSelectorMatches(t *testing.T) {
	m1 := Machine{Name: "lab-m1", Role: RoleMaster, Labels: map[string]string{"rack": "r1"}}
	w1 := Machine{Name: "lab-w1", Role: RoleWorker, Labels: map[string]string{"rack": "r1", "gpu": ""}}
	w2 := Machine{Name: "lab-w2", Role: RoleWorker, Labels: map[string]string{"rack": "r2"}}
	w3 := Machine{Name: "lab-w3", Role: RoleWorker}
	all := []Machine{m1, w1, w2, w3}
	tests := map[string]struct {
		selector string
		machines []string
		want     []string
	}{
		"zero selects all":            {want: []string{"lab-m1", "lab-w1", "lab-w2", "lab-w3"}},
		"by label":                    {selector: "rack=r1", want: []string{"lab-m1", "lab-w1"}},
		"label and role":              {selector: "rack=r1,role=worker", want: []string{"lab-w1"}},
		"by role":                     {selector: "role=worker", want: []string{"lab-w1", "lab-w2", "lab-w3"}},
		"by name":                     {selector: "name=lab-w2", want: []string{"lab-w2"}},
		"empty value needs the label": {selector: "gpu=", want: []string{"lab-w1"}},
		"no match":                    {selector: "rack=r9"},
		"names only":                  {machines: []string{"lab-w3", "lab-m1"}, want: []string{"lab-m1", "lab-w3"}},
		"names and selector":          {selector: "rack=r1", machines: []string{"lab-w1", "lab-w2"}, want: []string{"lab-w1"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sel, err := ParseSelector(tc.selector)
			if err != nil {
				t.Fatal(err)
			}
			s := Selection{Selector: sel, Machines: tc.machines}
			var got []string
			for _, m := range all {
				if s.Matches(m) {
					got = append(got, m.Name)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("selected (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSelectionString(t *testing.T) {
	sel, _ := ParseSelector("rack=r12,role=worker")
	tests := map[string]struct {
		s    Selection
		want string
	}{
		"zero":     {Selection{}, ""},
		"selector": {Selection{Selector: sel}, "rack=r12,role=worker"},
		"names":    {Selection{Machines: []string{"a", "b"}}, "machines=a,b"},
		"both":     {Selection{Selector: sel, Machines: []string{"a"}}, "rack=r12,role=worker machines=a"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.s.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if tc.s.IsZero() != (tc.want == "") {
				t.Errorf("IsZero() = %v", tc.s.IsZero())
			}
		})
	}
}

func TestCheckLabels(t *testing.T) {
	const w1 = "ip: 10.1.0.21"
	if ps := check(t, baseFiles(w1, w1+`, labels: {rack: r12, example.com/zone: eu-1, gpu: ""}`)); len(ps) > 0 {
		t.Fatalf("valid labels rejected:\n%v", ps)
	}
	tests := map[string]struct {
		labels string
		want   string // the exact problem line
	}{
		"bad key": {`{"rack id": r12}`,
			`sites/s1/site.yaml:machines[1].labels.rack id: label key "rack id" must be 1 to 63 letters, digits, '.', '_', '/' or '-' (line 14)`},
		"bad value": {`{rack: "r12,r13"}`,
			`sites/s1/site.yaml:machines[1].labels.rack: label value "r12,r13" must be at most 63 letters, digits, '.', '_' or '-' (line 14)`},
		"long value": {"{rack: " + strings.Repeat("r", 64) + "}",
			`sites/s1/site.yaml:machines[1].labels.rack: label value "` + strings.Repeat("r", 64) + `" must be at most 63 letters, digits, '.', '_' or '-' (line 14)`},
		"reserved key": {"{role: gpu}",
			`sites/s1/site.yaml:machines[1].labels.role: label key "role" is reserved: selectors match role against the machine's own role field (line 14)`},
		"not a mapping": {"[r12]",
			`sites/s1/site.yaml:machines[1].labels: want a mapping, got a list (line 14)`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ps := check(t, baseFiles(w1, w1+", labels: "+tc.labels))
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
				if p.String() == tc.want {
					return
				}
			}
			t.Fatalf("want problem\n  %s\ngot\n  %s", tc.want, strings.Join(got, "\n  "))
		})
	}
}
