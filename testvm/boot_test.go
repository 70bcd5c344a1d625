package testvm_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/testvm"
)

// The machine whose `undercloud render` output the baseline serves, and
// the version its booted URL names.
const (
	baseMachine = "lab-w1"
	version     = "v-lab"
)

// TestBaselineBoot PXE-boots the real OS of the test image against the
// baseline server (dnsmasq + static HTTP) with BIOS and UEFI, serving the
// `undercloud render` output of a lab machine: systemd must run the config's
// booted unit, whose POST must list what the real Ignition wrote. The BIOS VM
// boots a second time with a QMP reset.
func TestBaselineBoot(t *testing.T) {
	t.Parallel()
	img := image(t)
	repo := exampleRepo(t)
	cfg := renderConfig(t, repo, "v1", "lab", baseMachine, false)
	want := renderedFiles(t, repo, "v1", "lab", baseMachine, false)
	delete(want, ignition.ReportEnvPath)
	lab := testvm.NewTestLab(t, testvm.Options{Subnet: netip.MustParsePrefix("10.99.1.0/24")})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel() // parallel subtests run after this function returns: they make their own
	base, err := testvm.StartBaseline(ctx, lab, testvm.BaselineConfig{Image: img, Ignition: cfg, Version: version})
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
				checkBoot(ctx, t, lab, base, vm, boot, want)
			}
		})
	}
}

// checkBoot follows one boot of vm to its booted POST: the initramfs's
// lease and Ignition, systemd's multi-user.target and the served unit's POST,
// whose files must be want's (path -> content).
func checkBoot(ctx context.Context, t *testing.T, lab *testvm.Lab, base *testvm.Baseline, vm *testvm.VM, boot int, want map[string]string) {
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
	wait(testvm.MarkFilesOK)
	switched := wait(testvm.MarkSwitchRoot)
	posted := wait(testvm.MarkBootedUnit)
	wait(testvm.MarkMultiUser)
	t.Logf("%v boot %d: power-on → booted unit %.1fs (initramfs at %.1fs, lease at %.1fs, switch_root at %.1fs)", vm, boot,
		posted.Time.Sub(poweredOn).Seconds(), initLine.Time.Sub(poweredOn).Seconds(),
		lease.Time.Sub(poweredOn).Seconds(), switched.Time.Sub(poweredOn).Seconds())

	ip := strings.Fields(strings.SplitN(lease.Text, testvm.MarkLease, 2)[1])[0]
	if a, err := netip.ParseAddr(ip); err != nil || !lab.Subnet.Contains(a) {
		t.Errorf("boot %d: lease %q not in %s", boot, ip, lab.Subnet)
	}
	post, err := base.WaitPost(ctx, vm.MAC, boot)
	if err != nil {
		t.Fatal(err)
	}
	if post.Version != version || !strings.HasPrefix(post.Agent, ignition.ReportAgent) {
		t.Errorf("boot %d: POST version %q by %q, want %q by %s", boot, post.Version, post.Agent, version, ignition.ReportAgent)
	}
	files := map[string]string{}
	for p, c := range want {
		files[p] = testvm.SHA256Hex([]byte(c))
	}
	body := testvm.BootedBody{Digest: testvm.FilesDigest(files), Hostname: baseMachine, Files: files}
	if diff := cmp.Diff(body, post.Body); diff != "" {
		t.Errorf("boot %d: booted POST body (-want +got):\n%s\nraw: %s", boot, diff, post.Raw)
	}
}

// TestIgnitionRejects serves a spec 3.4.0 config, which Debian's Ignition
// 2.14 does not speak: the initramfs must say so on the console with
// Ignition's own error, never start the OS and post nothing.
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
	for _, m := range []string{"unsupported config version", testvm.MarkFetchFailed} {
		if _, err := vm.WaitFor(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if n := vm.Console.Count(testvm.MarkFilesOK) + vm.Console.Count(testvm.MarkSwitchRoot); n != 0 {
		t.Errorf("%d lines of a boot going on after a failed fetch", n)
	}
	if posts := base.Posts(); len(posts) != 0 {
		t.Errorf("booted POSTs after a failed fetch: %+v", posts)
	}
}
