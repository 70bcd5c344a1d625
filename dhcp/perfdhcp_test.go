package dhcp

import (
	"context"
	"log/slog"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestPerfdhcp runs Kea's perfdhcp against the server for two seconds at
// 500 exchanges/s (a rate a loaded CI machine sustains; make bench-dhcp
// measures the maximum). perfdhcp plays a relay (giaddr = its own address) for
// 800 simulated clients: every exchange must complete with a unique
// address, as a store with 2 ms commits stands behind.
func TestPerfdhcp(t *testing.T) {
	bin := needTool(t, "perfdhcp", "kea-admin")
	l := newLab(t)
	leases := newMemLeases(nil)
	leases.delay = 2 * time.Millisecond
	metrics := &memMetrics{}
	s := &Server{Iface: srvIf, ServerIP: serverIP, Plan: testPlan(), Leases: leases, Metrics: metrics, Log: slog.New(slog.DiscardHandler)}
	l.ip(t, l.cli, "addr", "add", "10.99.0.2/24", "dev", cliIf)
	l.ip(t, l.cli, "addr", "add", "10.99.4.2/22", "dev", cliIf)
	l.ip(t, l.srv, "route", "add", "10.99.4.0/22", "via", "10.99.0.2")
	l.serve(t, s, ServerPort)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.cli, bin, "-4", "-l", "10.99.4.2",
		"-R", "800", "-r", "500", "-p", "2", "10.99.0.1").CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("perfdhcp did not finish: %s", out)
	}
	// perfdhcp exits 3 when it counted drops; the numbers below decide.
	if exit, ok := err.(*exec.ExitError); err != nil && (!ok || exit.ExitCode() != 3) {
		t.Fatalf("perfdhcp: %v\n%s", err, out)
	}
	sent := sumStat(t, out, "sent packets")
	drops := sumStat(t, out, "drops")
	if sent < 1500 {
		t.Errorf("perfdhcp sent %d packets, want about 2000:\n%s", sent, out)
	}
	// A few packets of the last instant may be cut by the end of the run.
	if drops > sent/50 {
		t.Errorf("%d of %d packets dropped:\n%s", drops, sent, out)
	}
	if n := sumStat(t, out, "non unique addresses") + sumStat(t, out, "rejected leases"); n != 0 {
		t.Errorf("%d non-unique or rejected leases:\n%s", n, out)
	}
	if n := metrics.count("request/nak") + metrics.count("request/error"); n != 0 {
		t.Errorf("server sent %d NAKs or failed %d times", metrics.count("request/nak"), metrics.count("request/error"))
	}
}

// sumStat adds the values of a perfdhcp statistic over its exchanges
// (DISCOVER-OFFER and REQUEST-ACK).
func sumStat(t *testing.T, out []byte, name string) int {
	t.Helper()
	ms := regexp.MustCompile(`(?m)^\s*`+regexp.QuoteMeta(name)+`: (\d+)\s*$`).FindAllSubmatch(out, -1)
	if len(ms) != 2 {
		t.Fatalf("perfdhcp output has %d %q lines, want 2:\n%s", len(ms), name, out)
	}
	sum := 0
	for _, m := range ms {
		n, _ := strconv.Atoi(string(m[1]))
		sum += n
	}
	return sum
}
