package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
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

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secrets.yaml")
	os.WriteFile(file, []byte("api_tokens:\n  - {name: alice, role: operator, token: 0123456789abcdef}\nbmc:\n  lab-bmc: {username: admin, password: filepass}\n"), 0o600)
	s, err := loadSecrets(file, []string{"UNDERCLOUD_BMC_LAB_BMC_PASSWORD=envpass", "UNDERCLOUD_BMC_RACK_7_USERNAME=root", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if s.BMC["lab-bmc"] != (login{"admin", "envpass"}) || s.BMC["rack-7"].Username != "root" || len(s.APITokens) != 1 {
		t.Fatalf("secrets = %+v", s)
	}
	os.Chmod(file, 0o644)
	if _, err := loadSecrets(file, nil); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("a world-readable secrets file was accepted: %v", err)
	}
	for env, want := range map[string]string{
		"UNDERCLOUD_API_TOKENS=bob:admin:0123456789abcdef": `role "admin": want viewer or operator`,
		"UNDERCLOUD_API_TOKENS=bob:viewer:short":           "at least 16 characters",
		"UNDERCLOUD_API_TOKENS=bob":                        "want name:role:token",
	} {
		if _, err := loadSecrets("", []string{env}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", env, err, want)
		}
	}
	// The boot token key is kept in the data dir across restarts.
	k1, err := (&secrets{}).bootTokenKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := (&secrets{}).bootTokenKey(dir)
	if len(k1) != 32 || string(k1) != string(k2) {
		t.Fatalf("boot token key not kept: %x then %x", k1, k2)
	}
	st, _ := os.Stat(filepath.Join(dir, "boot-token.key"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("boot token key file mode %v", st.Mode().Perm())
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
