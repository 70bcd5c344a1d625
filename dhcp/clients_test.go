package dhcp

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// lease is what a real client reports it got, in the same words for all.
type lease struct {
	IP, Mask, Router, DNS, Domain, Hostname, Server, File string
}

// TestRealClients runs udhcpc and dhclient against the server inside a lab:
// a known MAC gets its reserved address and hostname, an unknown one a
// dynamic address that is committed and reported as discovered.
func TestRealClients(t *testing.T) {
	udhcpc := needTool(t, "udhcpc", "udhcpc")
	dhclient := needTool(t, "dhclient", "isc-dhcp-client")
	l := newLab(t)
	leases := newMemLeases(nil)
	rec := &memRecorder{}
	s := &Server{Iface: srvIf, ServerIP: serverIP, BootURL: "http://10.99.0.1:8080", Plan: testPlan(), Leases: leases, Recorder: rec}
	l.serve(t, s, ServerPort)

	known := lease{IP: knownIP, Mask: "255.255.255.0", Router: "10.99.0.1", DNS: "10.99.0.1", Domain: "lab.example",
		Hostname: "node-a", Server: "10.99.0.1"}
	dynamic := lease{Mask: "255.255.255.0", Router: "10.99.0.1", DNS: "10.99.0.1", Domain: "lab.example", Server: "10.99.0.1"}
	withFile := func(l lease, f string) lease { l.File = f; return l }
	tests := []struct {
		name   string
		run    func(t *testing.T, mac string, args ...string) lease
		mac    string
		args   []string
		want   lease // IP "" = any address of the dynamic range
		unique bool  // the machine is unknown: check it is discovered
	}{
		{name: "udhcpc known", run: l.udhcpc(udhcpc), mac: knownMAC, want: known},
		{name: "udhcpc unknown", run: l.udhcpc(udhcpc), mac: "02:00:00:99:01:01", want: dynamic, unique: true},
		{name: "udhcpc as BIOS PXE", run: l.udhcpc(udhcpc), mac: knownMAC,
			args: []string{"-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"}, want: withFile(known, "undionly.kpxe")},
		{name: "udhcpc as iPXE", run: l.udhcpc(udhcpc), mac: knownMAC,
			args: []string{"-x", "0x4d:69505845"}, want: withFile(known, "http://10.99.0.1:8080/boot.ipxe")},
		{name: "dhclient known", run: l.dhclient(dhclient), mac: knownMAC, want: known},
		{name: "dhclient unknown", run: l.dhclient(dhclient), mac: "02:00:00:99:01:02", want: dynamic, unique: true},
	}
	var dynamicIPs []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.run(t, tc.mac, tc.args...)
			want := tc.want
			if want.IP == "" {
				ip, err := netip.ParseAddr(got.IP)
				if err != nil || !testPlan().subnets[0].Range.Contains(ip) {
					t.Fatalf("dynamic address %q is not in the range", got.IP)
				}
				if slices.Contains(dynamicIPs, got.IP) {
					t.Errorf("address %s given twice", got.IP)
				}
				dynamicIPs = append(dynamicIPs, got.IP)
				want.IP = got.IP
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("lease (-want +got):\n%s", diff)
			}
			if !slices.Contains(leases.bound(), tc.mac+" "+got.IP) {
				t.Errorf("lease %s %s not committed; bound: %v", tc.mac, got.IP, leases.bound())
			}
			if tc.unique && !discovered(rec, tc.mac) {
				t.Errorf("%s not recorded as discovered; events: %v", tc.mac, rec.summary())
			}
		})
	}
}

// TestServeOnAllInterfaces runs the server on a socket bound to no device:
// its broadcast replies must still leave by the interface the request came
// in on (IP_PKTINFO), though the namespace has no route for them.
func TestServeOnAllInterfaces(t *testing.T) {
	udhcpc := needTool(t, "udhcpc", "udhcpc")
	l := newLab(t)
	s := &Server{Iface: "all", ServerIP: serverIP, Plan: testPlan(), Leases: newMemLeases(nil)}
	l.serveOn(t, s, "", ServerPort)
	got := l.udhcpc(udhcpc)(t, knownMAC)
	if got.IP != knownIP || got.Hostname != "node-a" {
		t.Errorf("lease = %+v, want %s node-a", got, knownIP)
	}
}

func discovered(rec *memRecorder, mac string) bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.events {
		if e.Kind == KindDiscover && !e.Known && e.MAC.String() == mac {
			return true
		}
	}
	return false
}

// udhcpc returns a runner of busybox udhcpc on the client end: it exits
// once bound (-q), or after 4 discovers without an answer (-n).
func (l *lab) udhcpc(bin string) func(t *testing.T, mac string, args ...string) lease {
	return func(t *testing.T, mac string, args ...string) lease {
		l.setClientMAC(t, mac)
		dir := t.TempDir()
		env := filepath.Join(dir, "env")
		script := writeScript(t, dir, `[ "$1" = bound ] && env > `+env+`.tmp && mv `+env+`.tmp `+env)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		argv := append([]string{"netns", "exec", l.cli, bin, "-f", "-q", "-n", "-i", cliIf, "-s", script, "-t", "4", "-T", "1"}, args...)
		out, err := exec.CommandContext(ctx, "ip", argv...).CombinedOutput()
		if err != nil {
			t.Fatalf("udhcpc: %v\n%s", err, out)
		}
		v := readEnv(t, env)
		return lease{IP: v["ip"], Mask: v["subnet"], Router: v["router"], DNS: v["dns"], Domain: v["domain"],
			Hostname: v["hostname"], Server: v["serverid"], File: v["boot_file"]}
	}
}

// dhclient returns a runner of ISC dhclient on the client end, in the
// foreground with its files in a temp dir; it is killed once bound.
func (l *lab) dhclient(bin string) func(t *testing.T, mac string, args ...string) lease {
	return func(t *testing.T, mac string, args ...string) lease {
		l.setClientMAC(t, mac)
		dir := t.TempDir()
		env := filepath.Join(dir, "env")
		script := writeScript(t, dir, `case "$reason" in BOUND|REBOOT) env > `+env+`.tmp && mv `+env+`.tmp `+env+`;; esac`)
		conf := filepath.Join(dir, "dhclient.conf")
		if err := os.WriteFile(conf, []byte("timeout 20;\nretry 1;\ninitial-interval 1;\n"+
			"request subnet-mask, routers, domain-name, domain-name-servers, host-name;\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		argv := append([]string{"-d", "-1", "-v", "-cf", conf, "-sf", script,
			"-lf", filepath.Join(dir, "leases"), "-pf", filepath.Join(dir, "pid")}, args...)
		cmd, out := l.start(t, l.cli, bin, append(argv, cliIf)...)
		if !waitFor(25*time.Second, func() bool { return fileExists(env) }) {
			t.Fatalf("dhclient got no lease:\n%s", out)
		}
		_ = cmd.Process.Kill() // it would stay to renew
		v := readEnv(t, env)
		return lease{IP: v["new_ip_address"], Mask: v["new_subnet_mask"], Router: v["new_routers"], DNS: v["new_domain_name_servers"],
			Domain: v["new_domain_name"], Hostname: v["new_host_name"], Server: v["new_dhcp_server_identifier"], File: v["new_filename"]}
	}
}

func writeScript(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "script")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// readEnv parses the output of env: NAME=value lines.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("client reported no lease: %v", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}
