package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
)

// leaseRows reads every lease row of the inventory at path through a
// read-only connection, so it works while a server owns the file.
func leaseRows(t *testing.T, path string) []string {
	t.Helper()
	db, err := inventory.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT ip_num, coalesce(mac, ''), site, hostname, state, expires FROM leases ORDER BY ip_num`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var ip int64
		var mac, site, host, state, expires string
		if err := rows.Scan(&ip, &mac, &site, &host, &state, &expires); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join([]string{netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}).String(), mac, site, host, state, expires}, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBackupRestore backs up a running server, restores the backup into a
// fresh data dir and checks that the server started on it holds the same
// leases and accepts the boot tokens the first one's key signed.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := inventory.Open(ctx, filepath.Join(data, "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []inventory.LeaseRequest{
		{MAC: "52:54:00:99:00:11", IP: netip.MustParseAddr("10.99.0.11"), Site: "lab", Hostname: "lab-m1", Duration: time.Hour},
		{MAC: "02:00:00:00:00:01", IP: netip.MustParseAddr("10.99.0.150"), Site: "lab", Duration: time.Hour},
	} {
		if _, err := db.Bind(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The server writes its boot-token key and TLS pair into the data dir
	// at start; the backup runs while it holds the inventory open.
	startServe(t, "--data-dir", data)
	want := leaseRows(t, filepath.Join(data, "inventory.db"))
	if len(want) != 2 {
		t.Fatalf("seeded leases: %q", want)
	}
	oldKey, err := os.ReadFile(filepath.Join(data, "boot-token.key"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := (&pxe.Tokens{Key: oldKey}).Mint(string(sites.MAC("52:54:00:99:00:11")), "v1", "boot-1")
	if err != nil {
		t.Fatal(err)
	}

	dest := filepath.Join(t.TempDir(), "backup")
	out, code := runCLI("backup", "--data-dir", data, dest)
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	for _, name := range []string{"inventory.db", "boot-token.key", "operator-tls.crt", "operator-tls.key"} {
		p := filepath.Join(dest, name)
		if !strings.Contains(out, "wrote "+p+"\n") {
			t.Errorf("backup output does not say it wrote %s:\n%s", p, out)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, st.Mode().Perm())
		}
	}
	if out, code := runCLI("backup", "--data-dir", data, dest); code == 0 || !strings.Contains(out, "refusing to overwrite") {
		t.Errorf("a second backup into the same directory: exit %d\n%s", code, out)
	}

	// Restore as documented: copy the files into an empty data dir, start.
	restored := filepath.Join(t.TempDir(), "restored")
	if err := os.MkdirAll(restored, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dest)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dest, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(restored, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startServe(t, "--data-dir", restored)
	if diff := cmp.Diff(want, leaseRows(t, filepath.Join(restored, "inventory.db"))); diff != "" {
		t.Errorf("leases of the restored server (-want +got):\n%s", diff)
	}
	newKey, err := os.ReadFile(filepath.Join(restored, "boot-token.key"))
	if err != nil {
		t.Fatal(err)
	}
	if boot, err := (&pxe.Tokens{Key: newKey}).Check(token, "52:54:00:99:00:11", "v1"); err != nil || boot != "boot-1" {
		t.Errorf("the restored key checks a token of the old one: boot %q, %v", boot, err)
	}
}
