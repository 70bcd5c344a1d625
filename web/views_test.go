package web

import "testing"

// Every version shown names the tag the operator wrote, then the commit it
// is; a version without a tag is its short commit.
func TestVersionNames(t *testing.T) {
	const commit = "91e3c32b2e343d7b45e0acf02226b14ac4218b55"
	tests := map[string]struct {
		got  string
		want string
	}{
		"ref with a tag":           {VersionRef{Commit: commit, Short: "91e3c32b2e34", Tag: "v2"}.String(), "v2 (91e3c32b2e34)"},
		"ref without a tag":        {VersionRef{Commit: commit, Short: "91e3c32b2e34"}.String(), "91e3c32b2e34"},
		"ref of a bare commit":     {commitRef(commit).String(), "91e3c32b2e34"},
		"view with tags":           {VersionView{Commit: commit, Short: "91e3c32b2e34", Label: "v2", Tags: []string{"v2", "lab-2"}}.String(), "v2 (91e3c32b2e34)"},
		"view without tags":        {VersionView{Commit: commit, Short: "91e3c32b2e34", Label: "91e3c32b2e34"}.String(), "91e3c32b2e34"},
		"rollout without its ref":  {RolloutView{Version: commit}.Target().String(), "91e3c32b2e34"},
		"rebuild with its ref":     {RebuildView{Version: commit, VersionRef: &VersionRef{Commit: commit, Short: "91e3c32b2e34", Tag: "v2"}}.Target().String(), "v2 (91e3c32b2e34)"},
		"template cell of nothing": {vrefString((*VersionRef)(nil)), "—"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("%q, want %q", tc.got, tc.want)
			}
		})
	}
}
