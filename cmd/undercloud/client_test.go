package main

import (
	"flag"
	"testing"

	"github.com/google/go-cmp/cmp"
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
