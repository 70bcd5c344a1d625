package testvm_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/undercloud/undercloud/testvm"
)

// clientNS is a second network namespace plugged into the lab's bridge by a
// veth pair: a host on the provisioning network, where real DHCP clients run.
type clientNS struct {
	name string // the namespace
	dev  string // its interface
	lab  *testvm.Lab
}

func newClientNS(t *testing.T, lab *testvm.Lab) *clientNS {
	t.Helper()
	c := &clientNS{name: fmt.Sprintf("ucdhcl-%d", os.Getpid()), dev: "c0", lab: lab}
	steps := [][]string{
		{"netns", "add", c.name},
		{"-n", c.name, "link", "set", "lo", "up"},
		{"-n", c.name, "link", "add", c.dev, "type", "veth", "peer", "name", "c0p", "netns", lab.Name},
		{"-n", lab.Name, "link", "set", "c0p", "master", lab.Bridge, "up"},
		{"-n", c.name, "link", "set", c.dev, "up"},
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", c.name).Run() })
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	return c
}

func (c *clientNS) ip(t *testing.T, args ...string) {
	t.Helper()
	args = append([]string{"-n", c.name}, args...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// run runs a command inside the client namespace with a timeout.
func (c *clientNS) run(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.name}, args...)...).CombinedOutput()
	return string(out), err
}

// lease runs a real DHCP client (udhcpc or dhclient) for the interface with
// the given MAC and returns the address it was given.
func (c *clientNS) lease(t *testing.T, client, mac string) string {
	t.Helper()
	c.ip(t, "link", "set", c.dev, "down")
	c.ip(t, "link", "set", c.dev, "address", mac)
	c.ip(t, "link", "set", c.dev, "up")
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	var args []string
	switch client {
	case "udhcpc":
		os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && echo \"LEASE $ip\"\nexit 0\n"), 0o755)
		args = []string{"udhcpc", "-i", c.dev, "-f", "-q", "-n", "-t", "5", "-T", "2", "-s", script}
	case "dhclient":
		os.WriteFile(script, []byte("#!/bin/sh\n[ \"$reason\" = BOUND ] && echo \"LEASE $new_ip_address\"\nexit 0\n"), 0o755)
		args = []string{"dhclient", "-4", "-1", "-d", "-sf", script, "-lf", filepath.Join(dir, "leases"), "-pf", filepath.Join(dir, "pid"), c.dev}
	}
	if _, err := exec.LookPath(args[0]); err != nil {
		t.Fatalf("%s not found (Debian package %s)", args[0], map[string]string{"udhcpc": "udhcpc", "dhclient": "isc-dhcp-client"}[client])
	}
	// Read the client's output as it comes: dhclient -d stays in the
	// foreground to renew, so stop it once it reports the lease.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.name}, args...)...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if ip, ok := strings.CutPrefix(sc.Text(), "LEASE "); ok {
			return ip
		}
	}
	t.Fatalf("%s with MAC %s got no lease:\n%s", client, mac, out.String())
	return ""
}

// TestDHCPAgainstTheBinary runs real DHCP clients against the real undercloud
// binary serving the lab site: udhcpc and dhclient each get a known MAC's
// reserved address and a dynamic one for an unknown MAC, and perfdhcp acting
// as a relay agent (giaddr set) is answered on port 67 with an address of the
// relayed subnet.
func TestDHCPAgainstTheBinary(t *testing.T) {
	lab := testvm.NewTestLab(t, testvm.Options{})
	srv := startServer(t, lab, exampleRepo(t))
	c := newClientNS(t, lab)
	tests := []struct{ client, mac, want string }{
		{"udhcpc", "52:54:00:99:00:21", "10.99.0.21"},   // lab-w1's reservation
		{"udhcpc", "52:54:00:aa:00:01", "10.99.0.1"},    // unknown: dynamic range 10.99.0.100-199
		{"dhclient", "52:54:00:99:00:22", "10.99.0.22"}, // lab-w2's reservation
		{"dhclient", "52:54:00:aa:00:02", "10.99.0.1"},
	}
	for _, tc := range tests {
		start := time.Now()
		got := c.lease(t, tc.client, tc.mac)
		t.Logf("%s %s -> %s in %s", tc.client, tc.mac, got, time.Since(start).Round(time.Millisecond))
		known := !strings.HasPrefix(tc.mac, "52:54:00:aa")
		if (known && got != tc.want) || (!known && !inDynamicRange(got)) {
			t.Errorf("%s with MAC %s got %s, want %s", tc.client, tc.mac, got, map[bool]string{true: tc.want, false: "10.99.0.100-199"}[known])
		}
		waitFor(t, 10*time.Second, "lease of "+tc.mac+" in the inventory", func() bool {
			r := srv.query(`SELECT ip FROM leases WHERE mac = ? AND state = 'bound'`, tc.mac)
			return len(r) == 1 && r[0][0] == got
		})
	}

	// A relay agent on 10.97.0.1 (the lab site's relayed rack).
	c.ip(t, "addr", "add", "10.99.0.250/24", "dev", c.dev)
	c.ip(t, "addr", "add", "10.97.0.1/24", "dev", c.dev)
	if out, err := exec.Command("ip", "-n", lab.Name, "route", "add", "10.97.0.0/24", "via", "10.99.0.250").CombinedOutput(); err != nil {
		t.Fatalf("route to the relay: %v\n%s", err, out)
	}
	acked := perfdhcpRelayed(t, c, 20)
	if acked != 20 {
		t.Fatalf("perfdhcp as a relay: %d of 20 exchanges answered", acked)
	}
	r := srv.query(`SELECT count(*) FROM leases WHERE state = 'bound' AND ip LIKE '10.97.0.%'`)
	if r[0][0] != "20" {
		t.Fatalf("relayed leases in the inventory: %s, want 20 in 10.97.0.0/24", r[0][0])
	}
}

func inDynamicRange(ip string) bool {
	last, ok := strings.CutPrefix(ip, "10.99.0.")
	n, err := strconv.Atoi(last)
	return ok && err == nil && n >= 100 && n <= 199
}

// perfdhcpRelayed runs perfdhcp as a relay agent (source and giaddr
// 10.97.0.1) for n full exchanges with distinct MACs and returns how many
// were acknowledged.
func perfdhcpRelayed(t *testing.T, c *clientNS, n int) int {
	t.Helper()
	if _, err := exec.LookPath("perfdhcp"); err != nil {
		t.Fatal("perfdhcp not found (Debian package kea-admin)")
	}
	out, err := c.run(t, 60*time.Second, "perfdhcp", "-4", "-l", "10.97.0.1", "-r", "50", "-R", strconv.Itoa(n),
		"-n", strconv.Itoa(n), "-W", "2000000", "-b", "mac=52:54:00:bb:00:00", "10.99.0.1")
	// perfdhcp exits 3 when a packet was dropped; the counts tell the story.
	m := regexp.MustCompile(`(?s)Statistics for: REQUEST-ACK.*?received packets: (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("perfdhcp output has no REQUEST-ACK statistics (%v):\n%s", err, out)
	}
	acked, _ := strconv.Atoi(m[1])
	return acked
}

// TestLeasesSurviveKill9 acknowledges leases, kills the server with SIGKILL
// (no shutdown, no flush) and restarts it: every acknowledged lease is still
// in the inventory, because each is committed before its ACK goes out.
func TestLeasesSurviveKill9(t *testing.T) {
	lab := testvm.NewTestLab(t, testvm.Options{})
	srv := startServer(t, lab, exampleRepo(t))
	c := newClientNS(t, lab)
	c.ip(t, "addr", "add", "10.99.0.250/24", "dev", c.dev)
	c.ip(t, "addr", "add", "10.97.0.1/24", "dev", c.dev)
	if out, err := exec.Command("ip", "-n", lab.Name, "route", "add", "10.97.0.0/24", "via", "10.99.0.250").CombinedOutput(); err != nil {
		t.Fatalf("route to the relay: %v\n%s", err, out)
	}
	const n = 80
	acked := perfdhcpRelayed(t, c, n)
	if acked < n*9/10 {
		t.Fatalf("only %d of %d exchanges acknowledged", acked, n)
	}
	srv.kill9()
	srv.start()
	r := srv.query(`SELECT count(*) FROM leases WHERE state = 'bound' AND ip LIKE '10.97.0.%'`)
	got, _ := strconv.Atoi(r[0][0])
	t.Logf("%d leases acknowledged, server killed with SIGKILL and restarted, %d bound leases in the inventory", acked, got)
	if got < acked {
		t.Fatalf("after kill -9: %d bound leases, but %d were acknowledged", got, acked)
	}
}
