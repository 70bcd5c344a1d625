package testvm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/undercloud/undercloud/testvm"
)

// tokenTTL is the boot token lifetime the install test gives the server:
// longer than an install boot takes to report, shorter than the test, so
// heartbeats are proven to outlive it.
const tokenTTL = 150 * time.Second

// TestInstallImage proves an install image on a real disk with one VM
// (lab-w1, BIOS, a blank 640 MiB disk) and its IPMI BMC, with the lab on
// image testnode-install and heartbeats every 10 s:
//
//  1. the first boot writes the disk image to /dev/vda, runs Ignition into
//     the disk's writable layer, boots it and reports booted;
//  2. a QMP reset boots the disk (the script says local disk; syslinux,
//     the root from the disk) without one artifact request, and the booted
//     report is not sent again;
//  3. heartbeats keep arriving after the server is killed and restarted,
//     and after the boot token has expired;
//  4. a rebuild through IPMI installs again.
func TestInstallImage(t *testing.T) {
	t.Parallel() // its own lab namespace; mostly waiting on heartbeats and the token's expiry
	ctx := context.Background()
	lab := testvm.NewTestLab(t, testvm.Options{MaxVMs: 1})
	secrets := labSecrets(t)
	repo := exampleRepo(t)
	site := "sites/lab/site.yaml"
	cur, err := repo.File(site)
	if err != nil {
		t.Fatal(err)
	}
	next := strings.Replace(string(cur), "image: testnode\n", "image: testnode-install\nheartbeat: {interval: 10s}\n", 1)
	if _, err := repo.Commit("lab: install to disk", map[string][]byte{site: []byte(next)}, "v-install"); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Bind("lab", "v-install"); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, lab, repo, "--secrets", secrets, "--boot-token-ttl", tokenTTL.String())
	v := commitOf(t, repo, "v-install")
	waitFor(t, 30*time.Second, "lab active at v-install", func() bool { return srv.activeCommit("lab") == v })

	m := labMachines[1]
	vm := lab.StartTestVM(t, testvm.VMConfig{Name: m.name, MAC: mustMAC(t, m.mac), DiskMiB: 640, BootTimeout: 10 * time.Minute})
	bmc, err := lab.StartBMC(ctx, vm, bmcPorts[m.name])
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, lab: lab, srv: srv, vms: map[string]*testvm.VM{m.name: vm}, bmcs: map[string]*testvm.BMC{m.name: bmc}}
	count := func(kind string, since time.Time) int {
		r := srv.query(`SELECT count(*) FROM boot_events WHERE mac = ? AND kind = ? AND at >= ?`,
			m.mac, kind, since.UTC().Format("2006-01-02T15:04:05.000Z"))
		if len(r) != 1 {
			t.Fatalf("count %s events: %v", kind, r)
		}
		var n int
		fmt.Sscan(r[0][0], &n)
		return n
	}
	waitHeartbeat := func(what string, after time.Time) {
		t.Helper()
		waitFor(t, time.Minute, "a heartbeat "+what, func() bool {
			return len(srv.query(`SELECT id FROM boot_events WHERE mac = ? AND kind = 'heartbeat' AND at > ?`,
				m.mac, after.UTC().Format("2006-01-02T15:04:05.000Z"))) > 0
		})
	}

	var installed time.Time
	t.Run("1-first-boot-installs", func(t *testing.T) {
		if _, err := vm.WaitFor(ctx, testvm.MarkInstalled+"/dev/vda"); err != nil {
			t.Fatal(err)
		}
		checkServedBoot(t, srv, vm, m.name, m.mac, m.ip, m.role, v, "v-install", false)
		recordBootTime(t, m.name+" install to disk, power-on to booted", time.Since(vm.BootStarted()))
		installed = vm.BootStarted()
	})
	if t.Failed() {
		return
	}

	t.Run("2-reset-boots-the-disk", func(t *testing.T) {
		reset := time.Now()
		if err := vm.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		for _, mark := range []string{"is installed, booting from local disk", testvm.MarkDiskRoot, testvm.MarkMultiUser} {
			if _, err := vm.WaitFor(ctx, mark); err != nil {
				t.Fatal(err)
			}
		}
		recordBootTime(t, m.name+" reset to multi-user.target from its disk", time.Since(reset))
		waitHeartbeat("from the disk's system", time.Now())
		if n := count("artifact", reset); n != 0 {
			t.Errorf("%d artifact requests after the reset, want none: the disk boots by itself", n)
		}
		if n := count("booted", reset); n != 0 {
			t.Errorf("%d booted reports after a reset that booted the disk, want none (the install's boot was reported): %v", n,
				srv.query(`SELECT at, boot_id, detail FROM boot_events WHERE mac = ? AND kind = 'booted'`, m.mac))
		}
		if n := vm.Console.Count(testvm.MarkInstalled); n != 1 {
			t.Errorf("installed %d times, want once", n)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("3-heartbeats-outlive-restart-and-token", func(t *testing.T) {
		// A heartbeat sent before its boot's booted report is stored is
		// refused (the credential speaks for a boot that reported); under
		// load the first one can be. From here on none may be.
		restarted := time.Now()
		srv.kill9()
		srv.start()
		waitHeartbeat("after a server restart", time.Now())
		if wait := time.Until(installed.Add(tokenTTL)); wait > 0 {
			t.Logf("waiting %.0fs for the boot token to expire", wait.Seconds())
			time.Sleep(wait) // the token's expiry is wall-clock time in the server: nothing to wait on but the clock
		}
		waitHeartbeat("after the boot token expired", time.Now())
		if n := count("callback-denied", restarted); n != 0 {
			t.Errorf("%d callbacks denied since the server restarted", n)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("4-rebuild-installs-again", func(t *testing.T) {
		if _, err := f.cli("machine", "rebuild", "lab/"+m.name, "--wait"); err != nil {
			t.Fatalf("machine rebuild: %v", err)
		}
		f.waitBooted(m.name, v, 2)
		if n := vm.Console.Count(testvm.MarkInstalled); n != 2 {
			t.Errorf("installed %d times after the rebuild, want twice", n)
		}
	})
}
