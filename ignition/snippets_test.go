package ignition

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSpecUp checks that carrying the generated base up with Ignition's
// translators gives the config parsing it as JSON gave (the old path), in
// every spec.
func TestSpecUp(t *testing.T) {
	for i, sp := range specs() {
		for _, machine := range []string{"m1", "w1"} {
			t.Run(sp.version+"/"+machine, func(t *testing.T) {
				in := input(t, repo(sp.version, nil), machine, i%2 == 0)
				b, err := base(in, []string{"/etc/motd"})
				if err != nil {
					t.Fatal(err)
				}
				raw, err := json.Marshal(b)
				if err != nil {
					t.Fatal(err)
				}
				parsed, rpt, err := sp.parse(raw)
				if err != nil || failing(rpt) {
					t.Fatalf("base does not parse: %v %s", err, rpt)
				}
				want, _ := json.MarshalIndent(parsed, "", "  ")
				got, _ := json.MarshalIndent(sp.up(b), "", "  ")
				if !bytes.Equal(got, want) {
					t.Errorf("translated base differs from parsed (-parsed +translated):\n%s", cmp.Diff(string(want), string(got)))
				}
			})
		}
	}
}

// TestSnippetsRender checks that configs rendered with shared parsed
// snippets, many at once, are those Render gives, and that a snippet's
// problems are reported every time.
func TestSnippetsRender(t *testing.T) {
	snippets := map[string]string{
		"sites/lab/snippets/common.bu":  "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/a\n      contents:\n        inline: a\n",
		"sites/lab/snippets/worker.ign": `{"ignition": {"version": "3.0.0"}, "storage": {"files": [{"path": "/etc/motd", "overwrite": true, "contents": {"source": "data:,hello"}}]}}`,
	}
	var c Snippets
	for _, spec := range []string{"3.0.0", "3.4.0", "3.6.0"} {
		files := repo(spec, snippets)
		if spec == "3.0.0" {
			files = repo(spec, map[string]string{"sites/lab/snippets/worker.ign": snippets["sites/lab/snippets/worker.ign"]})
		}
		var wg sync.WaitGroup
		for _, machine := range []string{"m1", "w1", "m1", "w1"} {
			for _, boot := range []bool{false, true} {
				in := input(t, files, machine, boot)
				want, err := Render(in)
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := c.Render(in)
					if err != nil {
						t.Error(err)
						return
					}
					if !bytes.Equal(got, want) {
						t.Errorf("%s %s: differs from Render (-want +got):\n%s", spec, in.Machine.Name, cmp.Diff(string(want), string(got)))
					}
				}()
			}
		}
		wg.Wait()
	}
	bad := repo("3.4.0", map[string]string{"sites/lab/snippets/common.ign": `{"ignition": {"version": "3.0.0"}, "storage": {"files": [{"path": "relative"}]}}`})
	for range 2 {
		if _, err := c.Render(input(t, bad, "w1", false)); len(problems(t, err)) == 0 {
			t.Fatalf("bad snippet: %v, want problems", err)
		}
	}
}
