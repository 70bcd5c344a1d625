package testvm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/undercloud/undercloud/testvm"
)

// operatorToken is the API token the rollout tests give the server and the CLI.
const operatorToken = "rollout-test-operator-token"

// bmcPorts are the lab site's BMC addresses (10.99.0.1:port).
var bmcPorts = map[string]int{"lab-m1": 6211, "lab-w1": 6221, "lab-w2": 6222}

// fleet is the lab site booted on v1, each VM with its ipmi_sim BMC, served
// by the real binary with API tokens and the BMC credentials.
type fleet struct {
	t    *testing.T
	lab  *testvm.Lab
	srv  *labServer
	vms  map[string]*testvm.VM
	bmcs map[string]*testvm.BMC
}

// labSecrets writes the secrets file of a lab server: the operator token
// of the CLI and the lab BMCs' credentials.
func labSecrets(t *testing.T) string {
	t.Helper()
	secrets := filepath.Join(t.TempDir(), "secrets.yaml")
	err := os.WriteFile(secrets, []byte(fmt.Sprintf("api_tokens:\n  - {name: ops, role: operator, token: %s}\nbmc:\n  lab-bmc: {username: %s, password: %s}\n",
		operatorToken, testvm.BMCUser, testvm.BMCPassword)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return secrets
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	ctx := context.Background()
	lab := testvm.NewTestLab(t, testvm.Options{MaxVMs: len(labMachines)})
	secrets := labSecrets(t)
	f := &fleet{t: t, lab: lab, vms: map[string]*testvm.VM{}, bmcs: map[string]*testvm.BMC{}}
	f.srv = startServer(t, lab, exampleRepo(t), "--secrets", secrets)
	for _, m := range labMachines {
		vm := lab.StartTestVM(t, testvm.VMConfig{Name: m.name, MAC: mustMAC(t, m.mac), Firmware: m.fw, BootTimeout: 30 * time.Minute})
		bmc, err := lab.StartBMC(ctx, vm, bmcPorts[m.name])
		if err != nil {
			t.Fatal(err)
		}
		f.vms[m.name], f.bmcs[m.name] = vm, bmc
	}
	v1 := commitOf(t, f.srv.repo, "v1")
	for _, m := range labMachines {
		f.waitBooted(m.name, v1, 1)
	}
	return f
}

// cli runs the undercloud CLI inside the lab against the server.
func (f *fleet) cli(args ...string) (string, error) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := f.lab.Command(ctx, append([]string{undercloudBin(f.t)}, args...)...)
	cmd.Env = append(os.Environ(), "UNDERCLOUD_SERVER="+f.srv.opURL(), "UNDERCLOUD_CA="+f.srv.caFile(), "UNDERCLOUD_TOKEN="+operatorToken)
	out, err := cmd.CombinedOutput()
	f.t.Logf("undercloud %s\n%s", strings.Join(args, " "), out)
	return string(out), err
}

// waitBooted waits until the inventory holds a VM's n-th booted report on
// commit (sent by the served config's unit).
func (f *fleet) waitBooted(name, commit string, n int) {
	f.t.Helper()
	vm := f.vms[name]
	waitFor(f.t, 5*time.Minute, fmt.Sprintf("%s booted %d time(s) on %s", name, n, commit[:12]), func() bool {
		if err := vm.Err(); err != nil {
			f.t.Fatal(err)
		}
		return f.bootedOn(name, commit) >= n
	})
}

// lastReport is a VM's latest booted report on commit in the inventory.
func (f *fleet) lastReport(name, commit string) bootedReport {
	f.t.Helper()
	var rep bootedReport
	r := f.srv.query(`SELECT detail FROM boot_events WHERE mac = ? AND kind = 'booted' AND version = ? ORDER BY id DESC LIMIT 1`,
		f.vms[name].MAC.String(), commit)
	if len(r) != 1 || json.Unmarshal([]byte(r[0][0]), &rep) != nil {
		f.t.Fatalf("%s: no booted report on %s: %v", name, commit, r)
	}
	return rep
}

// bootedOn counts a VM's booted reports on commit in the inventory.
func (f *fleet) bootedOn(name, commit string) int {
	r := f.srv.query(`SELECT count(*) FROM boot_events WHERE mac = ? AND kind = 'booted' AND version = ?`,
		f.vms[name].MAC.String(), commit)
	if len(r) != 1 {
		return 0
	}
	n, _ := strconv.Atoi(r[0][0])
	return n
}

// boots is how many times a VM has started its test image so far.
func (f *fleet) boots(name string) int { return f.vms[name].Console.Count(testvm.MarkInit) }

// resets is how many chassis resets (or power-ons) a BMC was asked for.
func (f *fleet) resets(name string) int {
	reqs, err := f.bmcs[name].Requests()
	if err != nil {
		return 0
	}
	n := 0
	for _, r := range reqs {
		if strings.Contains(r, " set reset ") || strings.Contains(r, " set power 1") {
			n++
		}
	}
	return n
}

// bindNew commits a new version on main that changes the lab's motd, binds
// the lab to it and waits until it is active; it returns its commit.
func (f *fleet) bindNew(tag string) string {
	f.t.Helper()
	repo := f.srv.repo
	motd := "sites/lab/snippets/common.bu"
	cur, err := repo.File(motd)
	if err != nil {
		f.t.Fatal(err)
	}
	next := strings.Replace(string(cur), "lab site, config ", "lab site, config "+tag+" after ", 1)
	if _, err := repo.Commit("lab: motd "+tag, map[string][]byte{motd: []byte(next)}, tag); err != nil {
		f.t.Fatal(err)
	}
	if _, err := repo.Bind("lab", tag); err != nil {
		f.t.Fatal(err)
	}
	commit := commitOf(f.t, repo, tag)
	waitFor(f.t, 30*time.Second, "lab active at "+tag, func() bool { return f.srv.activeCommit("lab") == commit })
	return commit
}

// rebuildsOf returns (state, created, updated) of every rebuild of a machine, oldest first.
func (f *fleet) rebuildsOf(name string) [][]string {
	return f.srv.query(`SELECT state, created, updated FROM rebuilds WHERE site = 'lab' AND machine = ? ORDER BY id`, name)
}

// TestRebuildAndRollouts proves rebuild by reboot on real VMs with real IPMI:
// one machine rebuilt through the CLI; a new version that a machine's own
// reset does not take, and a rollout of only the selected machines; a
// rollout of a new version, master first; a rollout that survives kill -9 of the server without rebuilding
// anything twice or skipping anything; and a rollout that halts by itself on
// an unreachable BMC without touching a further machine.
func TestRebuildAndRollouts(t *testing.T) {
	f := newFleet(t)
	v1 := commitOf(t, f.srv.repo, "v1")

	t.Run("1-machine-rebuild-through-IPMI", func(t *testing.T) {
		before, resets := f.boots("lab-w1"), f.resets("lab-w1")
		start := time.Now()
		if _, err := f.cli("machine", "rebuild", "lab/lab-w1", "--wait"); err != nil {
			t.Fatalf("machine rebuild: %v", err)
		}
		recordBootTime(t, "rebuild of lab-w1 (IPMI reset to booted)", time.Since(start))
		f.waitBooted("lab-w1", v1, 2)
		if f.boots("lab-w1") != before+1 || f.resets("lab-w1") != resets+1 {
			t.Fatalf("lab-w1: %d boots and %d BMC resets for one rebuild", f.boots("lab-w1")-before, f.resets("lab-w1")-resets)
		}
		devs, _ := f.bmcs["lab-w1"].BootDevices()
		if len(devs) == 0 || devs[len(devs)-1] != "pxe" {
			t.Fatalf("the BMC was not asked for a one-time PXE boot: %v", devs)
		}
		if r := f.rebuildsOf("lab-w1"); len(r) != 1 || r[0][0] != "done" {
			t.Fatalf("lab-w1 rebuilds: %v", r)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("2-partial-rollout", func(t *testing.T) {
		v2 := f.bindNew("v2s")
		// lab-w2 resets by itself (QMP, not a rebuild): it boots its
		// assigned v1 again, not the newly active v2s.
		reset := func(name string, n int) {
			t.Helper()
			if err := f.vms[name].Reset(context.Background()); err != nil {
				t.Fatal(err)
			}
			f.waitBooted(name, v1, n)
		}
		reset("lab-w2", 2)
		// A rollout of rack r1's workers moves lab-w1 only.
		out, err := f.cli("rollout", "start", "lab", "--select", "rack=r1,role=worker", "--wait")
		if err != nil {
			t.Fatalf("rollout --select: %v\n%s", err, out)
		}
		f.waitBooted("lab-w1", v2, 1)
		// --wait shows each machine's progress as its state changes.
		if steps := strings.Count(out, " lab-w1: "); steps < 2 || !strings.Contains(out, " lab-w1: done") {
			t.Errorf("rollout --wait printed %d progress lines for lab-w1, want its states up to done:\n%s", steps, out)
		}
		for _, name := range []string{"lab-m1", "lab-w2"} {
			if n := f.bootedOn(name, v2); n != 0 {
				t.Errorf("%s, not selected, booted v2s %d times", name, n)
			}
			if r := f.srv.query(`SELECT assigned_version FROM machines WHERE name = ?`, name); len(r) != 1 || r[0][0] != v1 {
				t.Errorf("%s, not selected, is assigned %v, want v1", name, r)
			}
		}
		// The unselected lab-w2 resets again: still v1.
		reset("lab-w2", 3)
		if n := f.bootedOn("lab-w2", v2); n != 0 {
			t.Errorf("lab-w2 booted v2s after a reset")
		}
	})
	if t.Failed() {
		return
	}

	t.Run("3-rollout-master-first", func(t *testing.T) {
		v2 := f.bindNew("v2b")
		start := time.Now()
		if _, err := f.cli("rollout", "start", "lab", "--wait"); err != nil {
			t.Fatalf("rollout: %v", err)
		}
		recordBootTime(t, "rollout of 3 machines (1 master, then 2 workers)", time.Since(start))
		for _, m := range labMachines {
			f.waitBooted(m.name, v2, 1)
			want := renderedFiles(t, f.srv.repo, "v2b", "lab", m.name, true)["/etc/motd"]
			written := f.lastReport(m.name, v2).Files
			if !strings.Contains(want, "v2b") || written["/etc/motd"] != testvm.SHA256Hex([]byte(want)) {
				t.Errorf("%s: Ignition's last /etc/motd is %s, v2b renders %q", m.name, written["/etc/motd"], want)
			}
		}
		// The master's rebuild was done before any worker's started.
		m := f.rebuildsOf("lab-m1")
		masterDone := m[len(m)-1][2]
		for _, w := range []string{"lab-w1", "lab-w2"} {
			r := f.rebuildsOf(w)
			if created := r[len(r)-1][1]; created < masterDone {
				t.Errorf("%s's rebuild started at %s, before the master's finished at %s", w, created, masterDone)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("4-kill-9-in-the-middle", func(t *testing.T) {
		v3 := f.bindNew("v3ok")
		before := map[string]int{}
		resets := map[string]int{}
		for _, m := range labMachines {
			before[m.name], resets[m.name] = f.boots(m.name), f.resets(m.name)
		}
		if _, err := f.cli("rollout", "start", "lab"); err != nil {
			t.Fatalf("rollout start: %v", err)
		}
		// Kill the server while the master is booting into v3ok.
		waitFor(t, 3*time.Minute, "the master's rebuild under way", func() bool {
			r := f.rebuildsOf("lab-m1")
			return len(r) > 0 && (r[len(r)-1][0] == "booting" || r[len(r)-1][0] == "config-served")
		})
		f.srv.kill9()
		t.Log("server killed with SIGKILL while the master was booting; restarting")
		f.srv.start()
		// The restarted server resumes the rollout by itself.
		var status string
		waitFor(t, 10*time.Minute, "the rollout to end", func() bool {
			status, _ = f.cli("rollout", "status", "lab")
			return !strings.Contains(status, ": running,") && !strings.Contains(status, ": planned,")
		})
		if !strings.Contains(status, ": done,") {
			t.Fatalf("after the restart the rollout did not complete:\n%s", status)
		}
		for _, m := range labMachines {
			f.waitBooted(m.name, v3, 1)
			if got := f.boots(m.name) - before[m.name]; got != 1 {
				t.Errorf("%s booted %d times during the rollout, want exactly 1", m.name, got)
			}
			if got := f.resets(m.name) - resets[m.name]; got != 1 {
				t.Errorf("%s's BMC was asked for %d resets, want exactly 1", m.name, got)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("5-unreachable-BMC-halts", func(t *testing.T) {
		f.bmcs["lab-m1"].Proc.Stop(time.Second)
		v4 := f.bindNew("v4ok")
		before := map[string]int{}
		for _, m := range labMachines {
			before[m.name] = f.boots(m.name) + f.resets(m.name)
		}
		out, err := f.cli("rollout", "start", "lab", "--wait")
		if err == nil {
			t.Fatalf("rollout with the master's BMC down succeeded:\n%s", out)
		}
		status, _ := f.cli("rollout", "status", "lab")
		if !strings.Contains(status, "halted") || !strings.Contains(status, "lab-m1") {
			t.Fatalf("rollout status does not say it halted on lab-m1:\n%s", status)
		}
		for _, w := range []string{"lab-w1", "lab-w2"} {
			if got := f.boots(w) + f.resets(w); got != before[w] {
				t.Errorf("%s was touched after the rollout halted", w)
			}
			if r := f.rebuildsOf(w); r[len(r)-1][0] != "done" {
				t.Errorf("%s has a new rebuild %v after the halt", w, r[len(r)-1])
			}
		}
		if r := f.srv.query(`SELECT commit_hash FROM site_versions WHERE site = 'lab' AND status = 'active'`); r[0][0] != v4 {
			t.Fatalf("active version %v, want v4ok %s (a halted rollout does not undo an activation)", r, v4)
		}
	})
}
