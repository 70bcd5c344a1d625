package testvm_test

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/testvm"
)

// The example repo's lab site (examples/site-repo/files/sites/lab/site.yaml).
var labMachines = []struct {
	name, mac, ip, role string
	fw                  testvm.Firmware
}{
	{"lab-m1", "52:54:00:99:00:11", "10.99.0.11", "master", testvm.BIOS},
	{"lab-w1", "52:54:00:99:00:21", "10.99.0.21", "worker", testvm.BIOS},
	{"lab-w2", "52:54:00:99:00:22", "10.99.0.22", "worker", testvm.UEFI}, // one machine boots UEFI
}

const unknownMAC = "52:54:00:99:00:99"

// The boot steps a provisioning boot must leave in the inventory, in order.
// A VM whose NIC ROM is iPXE (every BIOS VM) starts at iPXE's own DHCP; a
// UEFI VM booting through the firmware's PXE client first fetches the iPXE
// binary over TFTP.
var (
	timelineIPXE = []string{"dhcp-discover", "dhcp-offer", "dhcp-request", "dhcp-ack",
		"ipxe-chain", "ipxe-script", "artifact", "ignition", "booted"}
	timelineFirmware = append([]string{"dhcp-discover", "dhcp-offer", "dhcp-request", "dhcp-ack", "tftp"}, timelineIPXE...)
)

// TestLabSite boots the example lab site from the real undercloud binary:
// three known machines (one UEFI), an unknown one, then a new version that a
// reset does not take (the machine keeps its assigned version) and a broken
// version, each proven by what the real Ignition wrote in the VM.
func TestLabSite(t *testing.T) {
	ctx := context.Background()
	lab := testvm.NewTestLab(t, testvm.Options{})
	repo := exampleRepo(t)
	srv := startServer(t, lab, repo)
	v1, v2 := commitOf(t, repo, "v1"), commitOf(t, repo, "v2")
	waitFor(t, 30*time.Second, "lab active at v1", func() bool { return srv.activeCommit("lab") == v1 })

	vms := map[string]*testvm.VM{}
	top := t // VMs live for the whole test, not one subtest
	t.Run("1+2-three-machines-one-uefi", func(t *testing.T) {
		// Two VMs at a time (one per core): the master and a worker, then the third.
		for _, batch := range [][]int{{0, 1}, {2}} {
			started := map[int]*testvm.VM{}
			for _, i := range batch {
				m := labMachines[i]
				started[i] = lab.StartTestVM(top, testvm.VMConfig{Name: m.name, MAC: mustMAC(t, m.mac), Firmware: m.fw,
					FirmwarePXE: m.fw == testvm.UEFI})
			}
			for _, i := range batch {
				m := labMachines[i]
				vm := started[i]
				checkServedBoot(t, srv, vm, m.name, m.mac, m.ip, m.role, v1, "v1", false)
				vms[m.name] = vm
			}
			if len(batch) == 2 {
				vms["lab-w1"].Close() // free the slot for the UEFI machine
			}
		}
		vms["lab-w2"].Close()
	})
	if t.Failed() {
		return
	}

	t.Run("3-unknown-machine-discovered", func(t *testing.T) {
		vm := lab.StartTestVM(top, testvm.VMConfig{Name: "stranger", MAC: mustMAC(t, unknownMAC)})
		if _, err := vm.WaitFor(ctx, "is not a known machine, nothing to boot"); err != nil {
			t.Fatal(err)
		}
		recordBootTime(t, "unknown MAC to its iPXE answer", time.Since(vm.BootStarted()))
		vm.Close()
		waitFor(t, 10*time.Second, "discovered machine recorded", func() bool {
			r := srv.query(`SELECT discovered, name, role FROM machines WHERE mac = ?`, unknownMAC)
			return len(r) == 1 && r[0][0] == "1" && r[0][1] == "" && r[0][2] == ""
		})
		lease := srv.query(`SELECT ip, state FROM leases WHERE mac = ?`, unknownMAC)
		if len(lease) != 1 || !strings.HasPrefix(lease[0][0], "10.99.0.1") || lease[0][1] != "bound" {
			t.Fatalf("unknown MAC's lease = %v, want a bound address of the dynamic range 10.99.0.100-199", lease)
		}
		for _, kind := range []string{"ignition", "booted"} {
			if n := srv.query(`SELECT count(*) FROM boot_events WHERE mac = ? AND kind = ?`, unknownMAC, kind); n[0][0] != "0" {
				t.Fatalf("an unknown machine got %s events: %v", kind, n)
			}
		}
	})

	m1 := vms["lab-m1"]
	t.Run("4-reset-keeps-the-assigned-version", func(t *testing.T) {
		if _, err := repo.Bind("lab", "v2"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "lab active at v2", func() bool { return srv.activeCommit("lab") == v2 })
		// A reset by QMP -- a power blip, a panic, an operator's reboot, not
		// a rebuild -- boots the version the machine is assigned, v1: a new
		// version reaches machines only through a rebuild or a rollout.
		if err := m1.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		// The site was bootstrapped by the master's first boot: it now joins
		// the existing etcd cluster instead of creating a new one.
		written := checkServedBoot(t, srv, m1, "lab-m1", labMachines[0].mac, labMachines[0].ip, "master", v1, "v1", true)
		want := renderedFiles(t, repo, "v1", "lab", "lab-m1", true)["/etc/motd"]
		if strings.Contains(want, "config v2") || written["/etc/motd"] != testvm.SHA256Hex([]byte(want)) {
			t.Fatalf("Ignition did not write v1's /etc/motd: wrote sha256 %s, v1 renders %q", written["/etc/motd"], want)
		}
		if r := srv.query(`SELECT assigned_version, desired_version FROM machines WHERE mac = ?`, labMachines[0].mac); len(r) != 1 || r[0][0] != v1 || r[0][1] != v2 {
			t.Fatalf("lab-m1 (assigned, desired) = %v, want (v1 %s, v2 %s)", r, v1, v2)
		}
	})

	t.Run("5-broken-version-rejected", func(t *testing.T) {
		if _, err := repo.Bind("lab", "v3-broken"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "v3-broken rejected", func() bool {
			r := srv.query(`SELECT reasons FROM site_versions WHERE site = 'lab' AND status = 'rejected'`)
			return len(r) == 1 && strings.Contains(r[0][0], "2 masters: etcd needs an odd number")
		})
		if got := srv.activeCommit("lab"); got != v2 {
			t.Fatalf("active version after a broken binding = %s, want v2 %s", got, v2)
		}
		if err := m1.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		checkServedBoot(t, srv, m1, "lab-m1", labMachines[0].mac, labMachines[0].ip, "master", v1, "v1", true)
	})
}

// checkServedBoot waits for a VM's boot to report back and checks it end to
// end: systemd reached multi-user.target and ran the served config's booted
// unit (the serial console), the reserved address, the booted report in the
// inventory (sent by the unit, on the version, with the files the real
// Ignition wrote), those files against what `undercloud render` gives for
// that machine at that version, and the inventory's timeline. It returns the
// files written (path -> sha256).
func checkServedBoot(t *testing.T, srv *labServer, vm *testvm.VM, name, mac, ip, role, commit, ref string, bootstrapped bool) map[string]string {
	t.Helper()
	ctx := context.Background()
	since := vm.BootStarted()
	line, err := vm.WaitFor(ctx, testvm.MarkBootedUnit)
	if err != nil {
		t.Fatal(err)
	}
	recordBootTime(t, name+" "+vm.Firmware.String()+" power-on to booted", line.Time.Sub(since))
	if _, err := vm.WaitFor(ctx, testvm.MarkMultiUser); err != nil {
		t.Fatal(err)
	}
	text := ""
	for _, l := range vm.Console.Lines() {
		if !l.Time.Before(since) {
			text += l.Text + "\n"
		}
	}
	if !strings.Contains(text, testvm.MarkLease+ip+" ") {
		t.Fatalf("%s: serial console lacks %q", name, testvm.MarkLease+ip)
	}

	rep := srv.waitBooted(t, mac, since)
	if rep.Version != commit {
		t.Fatalf("%s booted on version %q, want %s (%s)", name, rep.Version, commit, ref)
	}
	if !strings.HasPrefix(rep.Agent, ignition.ReportAgent) {
		t.Fatalf("%s: booted report sent by %q, not the served config's unit (%s)", name, rep.Agent, ignition.ReportAgent)
	}
	if rep.Hostname != name || rep.Digest != testvm.FilesDigest(rep.Files) {
		t.Fatalf("%s: booted report hostname %q digest %s, want %s and the digest of its files %s",
			name, rep.Hostname, rep.Digest, name, testvm.FilesDigest(rep.Files))
	}
	written := rep.Files
	rendered := renderedFiles(t, srv.repo, ref, "lab", name, bootstrapped)
	delete(rendered, ignition.ReportEnvPath) // per boot: the render shows placeholders
	for path, content := range rendered {
		if written[path] != testvm.SHA256Hex([]byte(content)) {
			t.Errorf("%s: Ignition wrote %s with sha256 %q, undercloud rendered %q", name, path, written[path], testvm.SHA256Hex([]byte(content)))
		}
	}
	for path := range written {
		if _, ok := rendered[path]; !ok {
			t.Errorf("%s: the machine reports %s, which `undercloud render` does not write", name, path)
		}
	}
	roleUnit := map[string]string{"master": "/etc/systemd/system/etcd-member.service", "worker": "/etc/systemd/system/kubelet.service"}[role]
	if _, ok := written[roleUnit]; !ok {
		t.Errorf("%s (%s): Ignition wrote no %s", name, role, roleUnit)
	}
	if role == "master" {
		state := map[bool]string{false: "--initial-cluster-state new", true: "--initial-cluster-state existing"}[bootstrapped]
		if !strings.Contains(rendered[roleUnit], state) {
			t.Errorf("%s: etcd unit lacks %q", name, state)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The inventory: provisioned on the version, and every step of the boot
	// in order.
	waitFor(t, 10*time.Second, name+" provisioned in the inventory", func() bool {
		r := srv.query(`SELECT state, current_version FROM machines WHERE mac = ?`, mac)
		return len(r) == 1 && r[0][0] == "provisioned" && r[0][1] == commit
	})
	var kinds []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		kinds = nil
		for _, row := range srv.query(`SELECT kind FROM boot_events WHERE mac = ? AND at >= ? ORDER BY id`, mac, sqlTime(since)) {
			kinds = append(kinds, row[0])
		}
		timeline := timelineIPXE
		if vm.Firmware == testvm.UEFI {
			timeline = timelineFirmware
		}
		if isSubsequence(timeline, kinds) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the inventory's boot timeline %v lacks steps of %v", name, kinds, timelineFirmware)
		}
	}
	return written
}

// sqlTime is t as the inventory stores times, a second early: boot_events
// rows at or after it are those of a boot that started at t.
func sqlTime(t time.Time) string {
	return t.UTC().Add(-time.Second).Format("2006-01-02T15:04:05.000Z")
}

// bootedReport is a booted event of the inventory: what the served
// config's unit sent.
type bootedReport struct {
	Version                 string
	Digest, Hostname, Agent string
	Files                   map[string]string
}

// waitBooted waits for mac's first booted event at or after since.
func (s *labServer) waitBooted(t testing.TB, mac string, since time.Time) bootedReport {
	t.Helper()
	var rep bootedReport
	waitFor(t, 30*time.Second, mac+" booted event in the inventory", func() bool {
		r := s.query(`SELECT version, detail FROM boot_events WHERE mac = ? AND kind = 'booted' AND at >= ? ORDER BY id LIMIT 1`,
			mac, sqlTime(since))
		if len(r) != 1 {
			return false
		}
		rep.Version = r[0][0]
		if err := json.Unmarshal([]byte(r[0][1]), &rep); err != nil {
			t.Fatalf("booted event detail %q: %v", r[0][1], err)
		}
		return true
	})
	return rep
}

// isSubsequence reports whether want appears in got in order (other events
// may come between: a second artifact, a repeated request).
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want) || slices.Equal(want, got)
}

func mustMAC(t testing.TB, s string) net.HardwareAddr {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}
