package testvm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/undercloud/undercloud/testvm"
)

// TestStallAtFirstScript kills the server (SIGKILL) at the moment a
// rebuilding machine's iPXE fetches its first HTTP script, /boot.ipxe: the
// server's test hook (UNDERCLOUD_TEST_HOLD) holds that request until the
// kill, so the kill lands there every run rather than by timing luck. The
// server comes back without the hook, and the machine must come back by
// itself -- its first script, from TFTP, tries /boot.ipxe again every 5 s --
// and finish the rebuild on the target, with the one power cycle the
// rebuild made (the stall recovery, which would power-cycle it again after
// 90 s, is the engine's second line and is not needed here).
func TestStallAtFirstScript(t *testing.T) {
	ctx := context.Background()
	lab := testvm.NewTestLab(t, testvm.Options{MaxVMs: 1})
	secrets := filepath.Join(t.TempDir(), "secrets.yaml")
	err := os.WriteFile(secrets, []byte(fmt.Sprintf("api_tokens:\n  - {name: ops, role: operator, token: %s}\nbmc:\n  lab-bmc: {username: %s, password: %s}\n",
		operatorToken, testvm.BMCUser, testvm.BMCPassword)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	const name = "lab-w1"
	m := labMachines[1]
	f := &fleet{t: t, lab: lab, vms: map[string]*testvm.VM{}, bmcs: map[string]*testvm.BMC{}}
	f.srv = startServer(t, lab, exampleRepo(t), "--secrets", secrets)
	vm := lab.StartTestVM(t, testvm.VMConfig{Name: m.name, MAC: mustMAC(t, m.mac), Firmware: m.fw, BootTimeout: 30 * time.Minute})
	bmc, err := lab.StartBMC(ctx, vm, bmcPorts[name])
	if err != nil {
		t.Fatal(err)
	}
	f.vms[name], f.bmcs[name] = vm, bmc
	f.waitBooted(name, commitOf(t, f.srv.repo, "v1"), 1)
	target := f.bindNew("v2stall")

	// Restart the server with the hook on /boot.ipxe.
	plain := f.srv.args
	f.srv.proc.Stop(10 * time.Second)
	f.srv.args = append([]string{"env", "UNDERCLOUD_TEST_HOLD=/boot.ipxe"}, plain...)
	logStart := fileSize(t, f.srv.proc.Log)
	f.srv.start()
	boots, resets := f.boots(name), f.resets(name)
	if _, err := f.cli("machine", "rebuild", "lab/"+name); err != nil {
		t.Fatalf("machine rebuild: %v", err)
	}
	waitFor(t, 3*time.Minute, "iPXE's /boot.ipxe held by the test hook", func() bool {
		b, _ := os.ReadFile(f.srv.proc.Log)
		return int64(len(b)) > logStart && strings.Contains(string(b[logStart:]), "held by test hook")
	})
	f.srv.kill9()
	killed := time.Now()
	t.Log("server killed with SIGKILL while iPXE fetched /boot.ipxe; restarting without the hook")
	f.srv.args = plain
	f.srv.start()
	restarted := time.Now()

	f.waitBooted(name, target, 1)
	back := time.Since(killed)
	waitFor(t, time.Minute, "the rebuild done", func() bool {
		r := f.rebuildsOf(name)
		return len(r) > 0 && r[len(r)-1][0] == "done"
	})
	t.Logf("the machine booted on the target %s after the kill (server down %s)", back.Round(100*time.Millisecond), restarted.Sub(killed).Round(100*time.Millisecond))
	recordBootTime(t, "stall-at-first-script: kill to booted", back)
	if got := f.boots(name) - boots; got != 1 {
		t.Errorf("%s started its image %d times during the rebuild, want 1", name, got)
	}
	if got := f.resets(name) - resets; got != 1 {
		t.Errorf("%s's BMC was asked for %d resets, want 1: iPXE did not come back by itself", name, got)
	}
	// iPXE's first script came over TFTP (the event of the held boot may
	// have died with the server: count the machine's).
	if n := f.srv.query(`SELECT count(*) FROM boot_events WHERE mac = ? AND kind = 'tftp'`, m.mac); n[0][0] == "0" {
		t.Errorf("%s never fetched its first script over TFTP", name)
	}
}

// fileSize is the size of path, 0 when it does not exist yet.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
