package main

import (
	"errors"
	"io"
	"runtime/debug"
	"strings"
	"testing"
)

func TestParseServe(t *testing.T) {
	tests := map[string]struct {
		args    []string
		env     map[string]string
		check   func(*serveConfig) string
		wantErr string
	}{
		"env fills flags": {
			env: map[string]string{"UNDERCLOUD_REPO": "/srv/sites", "UNDERCLOUD_DATA_DIR": "/tmp/uc", "UNDERCLOUD_REFRESH": "30s"},
			check: func(c *serveConfig) string {
				return c.Repo + " " + c.DataDir + " " + c.Refresh.String() + " " + c.ArtifactRoot
			},
		},
		"flag beats env": {
			args:  []string{"--repo", "https://git.example/sites.git", "--sites", "paris-1, lab"},
			env:   map[string]string{"UNDERCLOUD_REPO": "/srv/sites"},
			check: func(c *serveConfig) string { return c.Repo + " " + strings.Join(c.Sites, "|") },
		},
		"no repo":          {wantErr: "--repo (or UNDERCLOUD_REPO) is required"},
		"bad env value":    {env: map[string]string{"UNDERCLOUD_REPO": "x", "UNDERCLOUD_DHCP": "maybe"}, wantErr: `UNDERCLOUD_DHCP="maybe"`},
		"bad server ip":    {args: []string{"--repo", "x", "--server-ip", "fe80::1"}, wantErr: `--server-ip "fe80::1": not an IPv4 address`},
		"bad log level":    {args: []string{"--repo", "x", "--log-level", "loud"}, wantErr: `--log-level "loud"`},
		"bad efi binary":   {args: []string{"--repo", "x", "--efi-binary", "grub.efi"}, wantErr: `--efi-binary "grub.efi"`},
		"bad listen":       {args: []string{"--repo", "x", "--listen", "8080"}, wantErr: `--listen "8080": want host:port`},
		"refresh too fast": {args: []string{"--repo", "x", "--refresh", "1ms"}, wantErr: "--refresh 1ms: too short"},
		"stray argument":   {args: []string{"--repo", "x", "lab"}, wantErr: "serve takes no arguments"},
		"cert without key": {args: []string{"--repo", "x", "--tls-cert", "c.pem"}, wantErr: "--tls-cert and --tls-key go together"},
		"bad operator listen": {
			env: map[string]string{"UNDERCLOUD_REPO": "x", "UNDERCLOUD_OPERATOR_LISTEN": "8443"}, wantErr: `--operator-listen "8443"`,
		},
		"no connections": {args: []string{"--repo", "x", "--max-conns-per-ip", "0"}, wantErr: "--max-conns-per-ip 0: want at least 1"},
	}
	want := map[string]string{
		"env fills flags": "/srv/sites /tmp/uc 30s /tmp/uc/artifacts",
		"flag beats env":  "https://git.example/sites.git paris-1|lab",
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := parseServe(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				var ex exitError
				if !errors.As(err, &ex) || ex.code != 2 || !strings.Contains(ex.msg, tc.wantErr) {
					t.Fatalf("err = %v, want a usage error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.check(c); got != want[name] {
				t.Errorf("got %q, want %q", got, want[name])
			}
		})
	}
}

// TestTuneGC: serve raises GOGC unless the operator has set it.
func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, serveGCPercent)
	}
	tuneGC(func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set by the operator: GC percent changed to %d", got)
	}
}
