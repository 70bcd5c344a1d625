package testvm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// Options configure a [Lab]. The zero value is a usable lab on 10.99.0.0/24.
type Options struct {
	// Subnet is the provisioning network on the bridge; the bridge (where
	// servers under test listen) takes its first address. Namespaces are
	// private, so concurrent labs may use the same subnet. Default 10.99.0.0/24.
	Subnet netip.Prefix
	// HostLink adds a veth pair to the host namespace, so the host (a browser
	// for `make demo`) reaches services inside at [Lab.FromHost].
	HostLink bool
	// HostLinkPrefix is the /30 of that veth pair: the host end takes its first
	// address, the namespace end the second. Default: a free /30 in 10.98.0.0/16.
	HostLinkPrefix netip.Prefix
	// Dir is where the lab's work directory is created. Default os.TempDir();
	// keep it short, QEMU's unix socket paths must fit in 108 bytes.
	Dir string
	// KeepDir keeps the work directory (logs, serial consoles) after Close.
	KeepDir bool
	// NoRouterAdvert turns off the lab's IPv6 router advertisements; iPXE then
	// waits ~13 s for one on every boot. Only for measuring that wait.
	NoRouterAdvert bool
	// MaxVMs bounds the VMs running at once on this machine, across every test
	// binary (a file-lock semaphore). Default runtime.NumCPU().
	MaxVMs int
	// Accel is "tcg", "kvm" or "" (probe once per machine boot whether KVM
	// really runs a guest, else TCG). UNDERCLOUD_TESTVM_ACCEL overrides it.
	Accel string
	// ProbeImage is the test image the KVM probe boots; default: the image in
	// DefaultImageDir, if built. Without one the lab uses TCG.
	ProbeImage Image
	// Log receives lab events; nil discards them.
	Log *slog.Logger
}

// Lab is a private network namespace holding a provisioning bridge, the taps
// of its VMs, their BMCs and the servers under test. Close removes all of it.
type Lab struct {
	// Name names the network namespace (`ip netns exec Name ...`) and the work
	// directory; it is uclab-<pid>-<random>.
	Name string
	// Dir is the work directory: logs, consoles, sockets, firmware variables.
	Dir string
	// Bridge is the provisioning bridge's interface name inside the namespace.
	Bridge string
	// Subnet is the provisioning network.
	Subnet netip.Prefix
	// ServerAddr is the bridge's address, where servers under test listen and
	// BMCs answer.
	ServerAddr netip.Addr
	// FromHost is the namespace's address on the host link (invalid without
	// Options.HostLink): from the host, a service listening inside on
	// 0.0.0.0:port or FromHost:port is at FromHost:port.
	FromHost netip.Addr
	// HostAddr is the host end of the host link.
	HostAddr netip.Addr
	// Log receives lab events.
	Log *slog.Logger

	opt     Options
	slots   *slots
	mu      sync.Mutex
	closed  bool
	procs   []*Proc
	closers []func() error // VMs, BMCs, servers: run in reverse order by Close
	ntaps   int
	nvms    int
	accel   string // decided on the first VM
	hostIf  string // host end of the host link, if any
	netns   bool   // the namespace exists
}

// NewLab creates the namespace, bridge, RA sender and host link. On error
// everything already created is removed again.
func NewLab(ctx context.Context, opt Options) (_ *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("testvm: the lab needs root (network namespaces, taps)")
	}
	if _, err := lookTool("ip"); err != nil {
		return nil, err
	}
	if !opt.Subnet.IsValid() {
		opt.Subnet = netip.MustParsePrefix("10.99.0.0/24")
	}
	opt.Subnet = opt.Subnet.Masked()
	if !opt.Subnet.Addr().Is4() || opt.Subnet.Bits() > 29 {
		return nil, fmt.Errorf("testvm: subnet %s: want an IPv4 prefix of /29 or larger", opt.Subnet)
	}
	if opt.MaxVMs <= 0 {
		opt.MaxVMs = runtime.NumCPU()
	}
	if opt.Dir == "" {
		opt.Dir = os.TempDir()
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	removeStaleNetns(ctx)

	name, err := newLabName()
	if err != nil {
		return nil, err
	}
	l := &Lab{
		Name:       name,
		Dir:        filepath.Join(opt.Dir, name),
		Bridge:     "br0",
		Subnet:     opt.Subnet,
		ServerAddr: opt.Subnet.Addr().Next(),
		Log:        log.With("lab", name),
		opt:        opt,
		slots:      &slots{dir: slotDir, n: opt.MaxVMs},
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}
	defer func() {
		if err != nil {
			_ = l.Close()
		}
	}()

	if err := ip(ctx, "netns", "add", name); err != nil {
		return nil, err
	}
	l.netns = true
	if err := l.setupBridge(ctx); err != nil {
		return nil, err
	}
	if !opt.NoRouterAdvert {
		ra, err := startRouterAdvert(l.Name, l.Bridge, l.Log)
		if err != nil {
			return nil, err
		}
		l.closers = append(l.closers, ra.Close)
	}
	if opt.HostLink {
		if err := l.setupHostLink(ctx); err != nil {
			return nil, err
		}
	}
	l.Log.Info("lab up", "bridge", l.Bridge, "server", l.ServerAddr, "from_host", l.FromHost, "dir", l.Dir)
	return l, nil
}

// setupBridge creates the bridge with the server address. A veth port whose
// peer is up keeps it carrier-up before any VM runs (veth rather than dummy:
// not every kernel has the dummy driver), so servers can bind to it and its IPv6
// link-local address (the RA source) exists at once; DAD is off so that address
// is usable immediately.
func (l *Lab) setupBridge(ctx context.Context) error {
	n := l.Name
	err := InNetns(n, func() error {
		for _, f := range []string{"all", "default"} {
			p := "/proc/sys/net/ipv6/conf/" + f + "/accept_dad"
			if err := os.WriteFile(p, []byte("0"), 0o644); err != nil {
				return fmt.Errorf("disable DAD: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	prefix := netip.PrefixFrom(l.ServerAddr, l.Subnet.Bits()).String()
	steps := [][]string{
		{"-n", n, "link", "set", "lo", "up"},
		{"-n", n, "link", "add", l.Bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"},
		{"-n", n, "addr", "add", prefix, "dev", l.Bridge},
		{"-n", n, "link", "add", "carrier0", "type", "veth", "peer", "name", "carrier1"},
		{"-n", n, "link", "set", "carrier1", "up"},
		{"-n", n, "link", "set", "carrier0", "master", l.Bridge, "up"},
		{"-n", n, "link", "set", l.Bridge, "up"},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return fmt.Errorf("lab bridge: %w", err)
		}
	}
	return nil
}

// setupHostLink creates the veth pair between the host and the namespace.
func (l *Lab) setupHostLink(ctx context.Context) error {
	pfx := l.opt.HostLinkPrefix
	if !pfx.IsValid() {
		p, err := freeHostPrefix()
		if err != nil {
			return err
		}
		pfx = p
	}
	pfx = pfx.Masked()
	if !pfx.Addr().Is4() || pfx.Bits() > 30 {
		return fmt.Errorf("testvm: host link prefix %s: want an IPv4 /30 or larger", pfx)
	}
	l.HostAddr = pfx.Addr().Next()
	l.FromHost = l.HostAddr.Next()
	hostIf, err := randomIfName("uch")
	if err != nil {
		return err
	}
	if err := ip(ctx, "link", "add", hostIf, "type", "veth", "peer", "name", "host0", "netns", l.Name); err != nil {
		return fmt.Errorf("host link: %w", err)
	}
	l.hostIf = hostIf
	steps := [][]string{
		{"addr", "add", netip.PrefixFrom(l.HostAddr, pfx.Bits()).String(), "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", l.Name, "addr", "add", netip.PrefixFrom(l.FromHost, pfx.Bits()).String(), "dev", "host0"},
		{"-n", l.Name, "link", "set", "host0", "up"},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return fmt.Errorf("host link: %w", err)
		}
	}
	return nil
}

// freeHostPrefix picks a /30 in 10.98.0.0/16 that no host interface uses.
func freeHostPrefix() (netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("host addresses: %w", err)
	}
	used := map[netip.Prefix]bool{}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ad, ok := netip.AddrFromSlice(n.IP.To4()); ok {
				used[netip.PrefixFrom(ad, 30).Masked()] = true
			}
		}
	}
	start := os.Getpid() % 16384 // spread concurrent test binaries apart
	for i := range 16384 {
		k := (start + i) % 16384
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 98, byte(k >> 6), byte(k&63) << 2}), 30)
		if !used[p] {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("testvm: no free /30 in 10.98.0.0/16 for the host link")
}

// Addr returns the address with host number n in the lab subnet (Addr(1) is
// ServerAddr).
func (l *Lab) Addr(n int) netip.Addr {
	a := l.Subnet.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// addTap creates the next tap on the bridge; QEMU opens it by name from
// inside the namespace.
func (l *Lab) addTap(ctx context.Context) (string, error) {
	l.mu.Lock()
	tap := fmt.Sprintf("tap%d", l.ntaps)
	l.ntaps++
	l.mu.Unlock()
	for _, s := range [][]string{
		{"-n", l.Name, "tuntap", "add", "dev", tap, "mode", "tap"},
		{"-n", l.Name, "link", "set", tap, "master", l.Bridge, "up"},
	} {
		if err := ip(ctx, s...); err != nil {
			return "", fmt.Errorf("tap: %w", err)
		}
	}
	return tap, nil
}

// onClose registers fn to run when the lab closes, before earlier ones.
func (l *Lab) onClose(fn func() error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closers = append(l.closers, fn)
}

// Close stops every process and VM, deletes the namespace (taps, bridge and
// host link go with it) and removes the work directory unless KeepDir. It is
// safe to call more than once.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs, closers := l.procs, l.closers
	l.mu.Unlock()

	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	// Then every process still running, newest first, so nothing is left
	// inside when the namespace goes.
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(3 * time.Second)
	}
	ctx := context.Background()
	if l.hostIf != "" {
		// Normally gone with the namespace's end of the pair; this covers a
		// namespace that could not be deleted.
		_ = ip(ctx, "link", "del", l.hostIf)
	}
	if l.netns {
		if err := ip(ctx, "netns", "del", l.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if !l.opt.KeepDir {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove lab dir: %w", err))
		}
	}
	l.Log.Info("lab closed")
	return errors.Join(errs...)
}
