package main

import (
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/web"
)

func TestReorder(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	clientFlags(fs)
	fs.Bool("wait", false, "")
	tests := map[string]struct{ in, want []string }{
		"flags first":      {[]string{"--wait", "start", "lab"}, []string{"--wait", "start", "lab"}},
		"flags last":       {[]string{"start", "lab", "--wait"}, []string{"--wait", "start", "lab"}},
		"value flag":       {[]string{"start", "--token", "abc", "lab"}, []string{"--token", "abc", "start", "lab"}},
		"value with =":     {[]string{"start", "lab", "--server=http://x:1"}, []string{"--server=http://x:1", "start", "lab"}},
		"unknown flag":     {[]string{"start", "--nope", "lab"}, []string{"--nope", "start", "lab"}},
		"value at the end": {[]string{"status", "lab", "--token"}, []string{"--token", "status", "lab"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, reorder(fs, tc.in)); diff != "" {
				t.Errorf("reorder(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestRolloutStartBody(t *testing.T) {
	tests := map[string]struct {
		selector, machines string
		want               string // the JSON body; "null" for none
	}{
		"whole site":  {"", "", `null`},
		"selector":    {"rack=r12,role=worker", "", `{"select":"rack=r12,role=worker"}`},
		"machines":    {"", "lab-w1, lab-w2,", `{"machines":["lab-w1","lab-w2"]}`},
		"both":        {"rack=r1", "lab-w1", `{"select":"rack=r1","machines":["lab-w1"]}`},
		"only commas": {"", ",", `{}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(rolloutStartBody(tc.selector, tc.machines))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("body %s, want %s", b, tc.want)
			}
		})
	}
}

func TestPrintRolloutShowsSelection(t *testing.T) {
	var b strings.Builder
	printRollout(&b, web.RolloutView{ID: 3, Site: "lab", Version: "2222222222222222", State: "running", Selection: "rack=r12",
		Machines: []web.RolloutMachine{{Name: "lab-w2", Role: "worker", Batch: 1, State: "booting"}}})
	if want := "rollout 3 of lab (rack=r12) to 222222222222: running, 0 failure(s)"; !strings.HasPrefix(b.String(), want) {
		t.Errorf("printed\n%s\nwant it to start with %q", b.String(), want)
	}
	// Where the operator wrote a tag, the tag leads.
	b.Reset()
	printRollout(&b, web.RolloutView{ID: 4, Site: "lab", Version: "2222222222222222", State: "running",
		VersionRef: &web.VersionRef{Commit: "2222222222222222", Short: "222222222222", Tag: "v2"}})
	if want := "rollout 4 of lab to v2 (222222222222): running, 0 failure(s)"; !strings.HasPrefix(b.String(), want) {
		t.Errorf("printed\n%s\nwant it to start with %q", b.String(), want)
	}
}
