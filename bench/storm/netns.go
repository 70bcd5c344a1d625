package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/undercloud/undercloud/testvm"
)

// The storm's network, all inside namespaces it creates and deletes:
//
//	server ns  s0 10.0.0.1/24 ─veth─ sp ┐
//	                                    ├ br0 10.0.0.2/24 in the machines' ns
//	mirror ns  m0 10.0.0.1x/24 ─veth─ mp┘  (the mirror case only)
//
// The machines' namespace is the rack's router and relay agent: it holds
// the relay subnet 10.64.0.0/16 as a local route on lo (every address of
// it is the namespace's own), so each simulated machine can speak from its
// own leased address, and the relay agent binds giaddr 10.64.0.1:67. The
// server reaches the subnet through 10.0.0.2.
const (
	serverAddr  = "10.0.0.1"
	routerAddr  = "10.0.0.2"
	relaySubnet = "10.64.0.0/16"
	relayAddr   = "10.64.0.1"
)

// topo is the namespaces of one storm run.
type topo struct {
	Server, Machines string   // namespace names
	Mirrors          []string // mirror namespaces, in order
}

// nsPrefix starts every namespace the storm makes; the pid after it names
// the run, so leftovers of a killed run can be told apart.
const nsPrefix = "ucstorm-"

func newTopo(ctx context.Context) (*topo, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), hex.EncodeToString(b))
	t := &topo{Server: name + "-s", Machines: name + "-c"}
	err := runAll(ctx, [][]string{
		{"ip", "netns", "add", t.Server},
		{"ip", "netns", "add", t.Machines},
		{"ip", "-n", t.Server, "link", "set", "lo", "up"},
		{"ip", "-n", t.Machines, "link", "set", "lo", "up"},
		{"ip", "-n", t.Machines, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", t.Machines, "addr", "add", routerAddr + "/24", "dev", "br0"},
		{"ip", "-n", t.Machines, "link", "set", "br0", "up"},
		{"ip", "-n", t.Machines, "route", "add", "local", relaySubnet, "dev", "lo"},
	})
	if err == nil {
		err = t.attach(ctx, t.Server, "s0", "sp", serverAddr)
	}
	if err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// attach links namespace ns to the bridge through a veth: dev inside ns
// with addr/24 and a route to the relay subnet, peer on the bridge.
func (t *topo) attach(ctx context.Context, ns, dev, peer, addr string) error {
	return runAll(ctx, [][]string{
		{"ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", peer, "netns", t.Machines},
		{"ip", "-n", ns, "addr", "add", addr + "/24", "dev", dev},
		{"ip", "-n", ns, "link", "set", dev, "up"},
		{"ip", "-n", t.Machines, "link", "set", peer, "master", "br0"},
		{"ip", "-n", t.Machines, "link", "set", peer, "up"},
		{"ip", "-n", ns, "route", "add", relaySubnet, "via", routerAddr},
	})
}

// addMirror makes namespace number i (from 1) for a mirror at 10.0.0.1<i>.
func (t *topo) addMirror(ctx context.Context) (ns, addr string, err error) {
	i := len(t.Mirrors) + 1
	ns = fmt.Sprintf("%s-m%d", strings.TrimSuffix(t.Server, "-s"), i)
	addr = fmt.Sprintf("10.0.0.%d", 10+i)
	if err := runAll(ctx, [][]string{{"ip", "netns", "add", ns}, {"ip", "-n", ns, "link", "set", "lo", "up"}}); err != nil {
		return "", "", err
	}
	t.Mirrors = append(t.Mirrors, ns)
	return ns, addr, t.attach(ctx, ns, "m0", fmt.Sprintf("mp%d", i), addr)
}

// limit shapes what leaves dev in ns to rate (e.g. "1gbit"): the link's
// speed as the far end sees it. Without first it is a tbf. With first, an
// htb whose class for traffic to those addresses (u32 filters) is
// guaranteed 90 % of the rate and served first, the rest borrowing what it
// leaves: on the server's link, the caches' fills must not queue behind
// hundreds of machines' downloads, which TCP would give each an equal
// share. (The prio qdisc would do, but is not in every kernel: htb, tbf and
// u32 are.)
func limit(ctx context.Context, ns, dev, rate string, first ...string) error {
	tc := func(args ...string) []string { return append([]string{"ip", "netns", "exec", ns, "tc"}, args...) }
	if len(first) == 0 {
		return sh(ctx, tc("qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", "256kb", "latency", "50ms")...)
	}
	bps, err := parseRate(rate)
	if err != nil {
		return err
	}
	cmds := [][]string{
		tc("qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "20"),
		tc("class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", rate, "ceil", rate, "quantum", "60000"),
		tc("class", "add", "dev", dev, "parent", "1:1", "classid", "1:10", "htb", "rate", fmt.Sprintf("%dbit", bps*9/10), "ceil", rate, "prio", "0", "quantum", "60000"),
		tc("class", "add", "dev", dev, "parent", "1:1", "classid", "1:20", "htb", "rate", fmt.Sprintf("%dbit", bps/10), "ceil", rate, "prio", "1", "quantum", "60000"),
	}
	for _, a := range first {
		cmds = append(cmds, tc("filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1",
			"u32", "match", "ip", "dst", a+"/32", "flowid", "1:10"))
	}
	return runAll(ctx, cmds)
}

// parseRate reads a tc rate in bit/s: 1gbit, 500mbit, 100kbit.
func parseRate(rate string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mul    int64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if v, ok := strings.CutSuffix(rate, u.suffix); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n <= 0 {
				break
			}
			return int64(n * float64(u.mul)), nil
		}
	}
	return 0, fmt.Errorf("rate %q: want e.g. 1gbit or 500mbit", rate)
}

// Close deletes the namespaces, which takes their links with them.
func (t *topo) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ns := range append([]string{t.Server, t.Machines}, t.Mirrors...) {
		_ = sh(ctx, "ip", "netns", "del", ns)
	}
}

func sh(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func runAll(ctx context.Context, cmds [][]string) error {
	for _, c := range cmds {
		if err := sh(ctx, c...); err != nil {
			return err
		}
	}
	return nil
}

// inNetns runs fn inside namespace ns (testvm.InNetns): sockets fn opens
// stay there.
func inNetns(ns string, fn func() error) error { return testvm.InNetns(ns, fn) }

// nsClient is an HTTP client whose connections are opened in namespace ns:
// the benchmark's own requests (health, the inventory API), not the storm's.
func nsClient(ns string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(ns, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}
