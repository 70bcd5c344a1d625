package testvm_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/testvm"
)

// The static spec 3.3.0 config the baseline serves, and what the real
// Ignition must write from it.
const (
	sshKey  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxhYiBrZXkgZm9yIHVuZGVyY2xvdWQgdGVzdHM lab@undercloud"
	unit    = "[Unit]\nDescription=undercloud lab unit\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
	version = "v-lab"
)

// ignitionConfig is the config, built from typed values so the expectations
// below cannot drift from it.
func ignitionConfig(t *testing.T) []byte {
	t.Helper()
	file := func(path, data string) map[string]any {
		return map[string]any{"path": path, "mode": 0o644, "overwrite": true,
			"contents": map[string]any{"source": "data:," + url.PathEscape(data)}}
	}
	b, err := json.Marshal(map[string]any{
		"ignition": map[string]any{"version": "3.3.0"},
		"passwd":   map[string]any{"users": []any{map[string]any{"name": "core", "sshAuthorizedKeys": []string{sshKey}}}},
		"storage":  map[string]any{"files": []any{file("/etc/hostname", "node-1\n"), file("/etc/undercloud/role", "worker\n")}},
		"systemd":  map[string]any{"units": []any{map[string]any{"name": "lab.service", "enabled": true, "contents": unit}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantFiles is every file Ignition 2.14 writes for ignitionConfig, with its
// sha256: the two files, the unit, its preset and core's key fragment.
func wantFiles() map[string]string {
	return map[string]string{
		"/etc/hostname":                                 testvm.SHA256Hex([]byte("node-1\n")),
		"/etc/undercloud/role":                          testvm.SHA256Hex([]byte("worker\n")),
		"/etc/systemd/system/lab.service":               testvm.SHA256Hex([]byte(unit)),
		"/etc/systemd/system-preset/20-ignition.preset": testvm.SHA256Hex([]byte("enable lab.service\n")),
		"/home/core/.ssh/authorized_keys.d/ignition":    testvm.SHA256Hex([]byte(sshKey + "\n")),
	}
}

// TestBaselineBoot PXE-boots the test image against the baseline server with
// BIOS and UEFI, checks what the real Ignition wrote (serial markers and the
// booted POST) and boots the BIOS VM a second time with a QMP reset.
func TestBaselineBoot(t *testing.T) {
	t.Parallel()
	img := image(t)
	lab := testvm.NewTestLab(t, testvm.Options{Subnet: netip.MustParsePrefix("10.99.1.0/24")})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel() // parallel subtests run after this function returns: they make their own
	base, err := testvm.StartBaseline(ctx, lab, testvm.BaselineConfig{
		Image: img, Ignition: ignitionConfig(t), Version: version,
	})
	if err != nil {
		t.Fatal(err)
	}

	tests := map[string]struct {
		firmware testvm.Firmware
		mac      int
		boots    int
	}{
		"bios": {firmware: testvm.BIOS, mac: 1, boots: 2},
		"uefi": {firmware: testvm.UEFI, mac: 2, boots: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			defer cancel()
			vm := lab.StartTestVM(t, testvm.VMConfig{MAC: testvm.MAC(tc.mac), Firmware: tc.firmware})
			for boot := 1; boot <= tc.boots; boot++ {
				if boot > 1 {
					if err := vm.Reset(ctx); err != nil {
						t.Fatalf("reset: %v", err)
					}
				}
				checkBoot(ctx, t, lab, base, vm, boot)
			}
		})
	}
}

// checkBoot follows one boot of vm to its booted POST and checks both the
// serial markers and the POST against wantFiles.
func checkBoot(ctx context.Context, t *testing.T, lab *testvm.Lab, base *testvm.Baseline, vm *testvm.VM, boot int) {
	t.Helper()
	poweredOn := vm.BootStarted()
	wait := func(substr string) testvm.Line {
		t.Helper()
		l, err := vm.WaitFor(ctx, substr)
		if err != nil {
			t.Fatalf("boot %d: %v", boot, err)
		}
		return l
	}
	initLine := wait(testvm.MarkInit)
	lease := wait(testvm.MarkLease)
	wait(testvm.MarkFetchOK)
	wait(testvm.MarkFilesOK)
	wait(testvm.MarkHostname + "node-1")
	posted := wait(testvm.MarkBootedPosted + version)
	done := wait(testvm.MarkDone)
	t.Logf("%v boot %d: power-on → booted posted %.1fs (kernel /init at %.1fs, lease at %.1fs)", vm, boot,
		posted.Time.Sub(poweredOn).Seconds(), initLine.Time.Sub(poweredOn).Seconds(), lease.Time.Sub(poweredOn).Seconds())

	ip := strings.Fields(strings.SplitN(lease.Text, testvm.MarkLease, 2)[1])[0]
	if a, err := netip.ParseAddr(ip); err != nil || !lab.Subnet.Contains(a) {
		t.Errorf("boot %d: lease %q not in %s", boot, ip, lab.Subnet)
	}
	var thisBoot []testvm.Line
	for _, l := range vm.Console.Lines() {
		if !l.Time.Before(initLine.Time) && !l.Time.After(done.Time) {
			thisBoot = append(thisBoot, l)
		}
	}
	if diff := cmp.Diff(wantFiles(), testvm.WrittenFiles(thisBoot)); diff != "" {
		t.Errorf("boot %d: wrote markers (-want +got):\n%s", boot, diff)
	}

	post, err := base.WaitPost(ctx, vm.MAC, boot)
	if err != nil {
		t.Fatal(err)
	}
	if post.Version != version {
		t.Errorf("boot %d: POST version %q, want %q", boot, post.Version, version)
	}
	want := testvm.BootedBody{Digest: testvm.FilesDigest(wantFiles()), Hostname: "node-1", Files: wantFiles()}
	if diff := cmp.Diff(want, post.Body); diff != "" {
		t.Errorf("boot %d: booted POST body (-want +got):\n%s\nraw: %s", boot, diff, post.Raw)
	}
}

// TestIgnitionRejects serves a spec 3.4.0 config, which Debian's Ignition
// 2.14 does not speak: the image must say so on the console with Ignition's
// own error, post nothing and idle.
func TestIgnitionRejects(t *testing.T) {
	t.Parallel()
	img := image(t)
	lab := testvm.NewTestLab(t, testvm.Options{Subnet: netip.MustParsePrefix("10.99.3.0/24")})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	base, err := testvm.StartBaseline(ctx, lab, testvm.BaselineConfig{
		Image: img, Ignition: []byte(`{"ignition":{"version":"3.4.0"}}`), Version: version,
	})
	if err != nil {
		t.Fatal(err)
	}
	vm := lab.StartTestVM(t, testvm.VMConfig{MAC: testvm.MAC(6)})
	for _, m := range []string{testvm.MarkFetchFailed, "unsupported config version", testvm.MarkIdle} {
		if _, err := vm.WaitFor(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if n := vm.Console.Count(testvm.MarkFilesOK) + vm.Console.Count(testvm.MarkBootedPosted); n != 0 {
		t.Errorf("%d success markers after a failed fetch", n)
	}
	if posts := base.Posts(); len(posts) != 0 {
		t.Errorf("booted POSTs after a failed fetch: %+v", posts)
	}
}
