package sites

import "testing"

func TestVersionString(t *testing.T) {
	c := "91e3c32b2e34aaaabbbbccccddddeeeeffff0000"
	for _, tc := range []struct {
		v    Version
		want string
	}{
		{Version{Commit: c, Tags: []string{"v2", "stable"}}, "v2 (91e3c32b2e34)"},
		{Version{Commit: c}, "91e3c32b2e34"},
		{Version{Tags: []string{"v2"}}, "v2"},
	} {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.v, got, tc.want)
		}
	}
}
