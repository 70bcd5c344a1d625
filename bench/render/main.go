// Command render is the load generator of `make bench-render`: it runs the
// machine-facing HTTP server in process, with the real provision.Service
// over a real inventory (SQLite in a temporary directory), for a generated
// site of -machines machines, and drives /ignition and /ipxe with -conns
// concurrent connections, each request from the address of the machine it
// names (loopback addresses 127.77.x.y, which the site reserves for them,
// so the source check passes as on a real network).
//
// It measures the server as it is (configs rendered once per machine and
// version, identity hints written only when new) and, in the same run, the
// old path as baseline: every /ignition renders and validates (ConfigCache
// -1), every /ipxe writes the hints synchronously first. It prints req/s,
// p50 and p99 of each, and new/old ratios.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/undercloud/undercloud/images"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/provision"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-render:", err)
		os.Exit(1)
	}
}

type options struct {
	machines, conns int
	duration        time.Duration
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.machines, "machines", 200, "machines in the generated site (at most 60000)")
	fs.IntVar(&o.conns, "conns", 64, "concurrent connections")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long each endpoint is driven")
	newOnly := fs.Bool("new-only", false, "measure the new path only (for profiling)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if o.machines < 3 || o.machines > 60000 || o.conns < 1 {
		return errors.New("want 3 to 60000 machines and at least one connection")
	}
	dir, err := os.MkdirTemp("", "bench-render-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rel, err := release(o.machines)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bench-render: %d machines, %d connections, %s per endpoint, GOMAXPROCS %d (client and server share them)\n",
		o.machines, o.conns, o.duration, runtime.GOMAXPROCS(0))

	results := map[string]map[string]result{}
	modes := []string{"new", "old"}
	if *newOnly {
		modes = modes[:1]
	}
	for _, mode := range modes {
		r, err := measure(ctx, filepath.Join(dir, mode), rel, mode == "old", o, out)
		if err != nil {
			return fmt.Errorf("%s path: %w", mode, err)
		}
		results[mode] = r
	}
	if *newOnly {
		return nil
	}
	fmt.Fprintf(out, "\n%-10s %-4s %10s %10s %10s\n", "endpoint", "path", "req/s", "p50", "p99")
	for _, ep := range []string{"ignition", "ipxe"} {
		for _, mode := range []string{"new", "old"} {
			r := results[mode][ep]
			fmt.Fprintf(out, "%-10s %-4s %10.0f %10s %10s\n", "/"+ep, mode, r.rps, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond))
		}
		n, o := results["new"][ep], results["old"][ep]
		fmt.Fprintf(out, "%-10s %-4s %9.1fx %9.1fx %9.1fx  (new/old throughput; old/new latency)\n", "/"+ep, "gain",
			n.rps/o.rps, float64(o.p50)/float64(n.p50), float64(o.p99)/float64(n.p99))
	}
	return nil
}

// release generates the site: 3 masters and the rest workers, each at
// 127.77.x.y, with Butane snippets for both roles so every render
// translates them as a real site's would.
func release(n int) (*sites.Release, error) {
	var b strings.Builder
	b.WriteString(`network:
  subnet: 127.77.0.0/16
  gateway: 127.77.0.1
  dns: [127.77.0.2]
  domain: bench.example
image: node
cluster: {name: bench, api_vip: 127.77.0.10}
ssh_keys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJs2+d+IrZ8RrG0Jh5IDB6Uvd4BeaY70FKonx+t0ctS8 bench@example
machines:
`)
	for i := range n {
		role := "worker"
		if i < 3 {
			role = "master"
		}
		fmt.Fprintf(&b, "  - {name: n%d, mac: %q, role: %s, ip: %s}\n", i, mac(i), role, addr(i))
	}
	files := sites.Files{
		"images/node.yaml": []byte(`ignition: 3.3.0
mode: live
artifacts:
  kernel: {path: node/vmlinuz, sha256: 1111111111111111111111111111111111111111111111111111111111111111}
  initrd: {path: node/initrd, sha256: 2222222222222222222222222222222222222222222222222222222222222222}
`),
		"sites/bench/site.yaml": []byte(b.String()),
		"sites/bench/snippets/common.bu": []byte(`variant: fcos
version: 1.4.0
storage:
  files:
    - path: /etc/motd
      mode: 0644
      contents: {inline: managed by undercloud}
    - path: /etc/sysctl.d/90-bench.conf
      mode: 0644
      contents: {inline: "net.ipv4.ip_forward = 1\n"}
systemd:
  units:
    - name: chronyd.service
      enabled: true
`),
		"sites/bench/snippets/worker.bu": []byte(`variant: fcos
version: 1.4.0
storage:
  directories:
    - path: /var/lib/worker
      mode: 0755
`),
	}
	cfg, ps := sites.Load(files)
	if len(ps) > 0 {
		return nil, ps
	}
	return cfg.Release("bench", sites.Version{Commit: "0123456789abcdef0123456789abcdef01234567", Tags: []string{"bench"}})
}

func mac(i int) string  { return fmt.Sprintf("52:54:00:77:%02x:%02x", i>>8, i&0xff) }
func addr(i int) string { return fmt.Sprintf("127.77.%d.%d", 1+i/250, 1+i%250) }

// releases holds the one release.
type releases struct{ rel *sites.Release }

func (r releases) ReleaseAt(_ context.Context, site, commit string) (*sites.Release, error) {
	if site == r.rel.Site.Name && commit == r.rel.Version.Commit {
		return r.rel, nil
	}
	return nil, inventory.ErrNotFound
}

// oldTargets is the /ipxe path before: the hints written synchronously on
// every request, then the target.
type oldTargets struct {
	svc *provision.Service
	db  *inventory.DB
}

func (o oldTargets) Target(ctx context.Context, mac string, h pxe.Hints) (pxe.Target, error) {
	if err := o.db.FillIdentity(ctx, sites.MAC(mac), h.UUID, h.Serial); err != nil {
		return pxe.Target{}, err
	}
	return o.svc.Target(ctx, mac, h)
}

type result struct {
	rps      float64
	p50, p99 time.Duration
	errors   int
}

// measure starts a server (old: the baseline path) and drives both
// endpoints.
func measure(ctx context.Context, dir string, rel *sites.Release, old bool, o options, out io.Writer) (map[string]result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	db, err := inventory.Open(ctx, filepath.Join(dir, "inventory.db"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := db.RecordVersion(ctx, rel.Site.Name, rel.Version, nil); err != nil {
		return nil, err
	}
	svc := &provision.Service{DB: db, Releases: releases{rel}}
	var targets pxe.Targets = svc
	if old {
		svc.ConfigCache = -1
		targets = oldTargets{svc, db}
	}
	if err := svc.Activate(ctx, rel, []*sites.Release{rel}); err != nil {
		return nil, err
	}
	qctx, stop := context.WithCancel(ctx)
	queue := &pxe.Queue{Next: svc}
	var qwg sync.WaitGroup
	qwg.Add(1)
	go func() { defer qwg.Done(); queue.Run(qctx) }()
	defer func() { stop(); qwg.Wait() }()
	h := &pxe.HTTP{Targets: targets, Configs: svc, Sources: svc, Callbacks: svc, Recorder: queue,
		Artifacts: &images.Store{Dir: filepath.Join(dir, "images")}, Tokens: &pxe.Tokens{Key: []byte("bench key of at least sixteen bytes")}}
	handler, err := h.Handler()
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(handler)
	defer srv.Close()

	n := len(rel.Site.Machines)
	clients := make([]*http.Client, n)
	ipxe := make([]string, n)
	ign := make([]string, n)
	for i := range n {
		ip := netip.MustParseAddr(addr(i))
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip.AsSlice()}, Timeout: 5 * time.Second}
		clients[i] = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}}
		ipxe[i] = fmt.Sprintf("%s/ipxe?mac=%s&uuid=8d3f0a4e-1b2c-4d5e-8f90-%012d&serial=SN%d&arch=x86_64&platform=efi", srv.URL, mac(i), i, i)
		body, err := get(clients[i], ipxe[i])
		if err != nil {
			return nil, fmt.Errorf("script of machine %d: %w", i, err)
		}
		for _, f := range strings.Fields(string(body)) {
			if v, ok := strings.CutPrefix(f, pxe.DefaultIgnitionArg+"="); ok {
				ign[i] = v
			}
		}
		if ign[i] == "" {
			return nil, fmt.Errorf("script of machine %d names no config:\n%s", i, body)
		}
	}
	name := map[bool]string{false: "new", true: "old"}[old]
	// Warm up: one config per machine, the renders the new path keeps.
	start := time.Now()
	warm := drive(clients, ign, o.conns, 0, n)
	fmt.Fprintf(out, "%s path: first /ignition of every machine: %s (%d errors)\n", name, time.Since(start).Round(time.Millisecond), warm.errors)

	res := map[string]result{}
	for ep, urls := range map[string][]string{"ignition": ign, "ipxe": ipxe} {
		r := drive(clients, urls, o.conns, o.duration, 0)
		if r.errors > 0 {
			return nil, fmt.Errorf("/%s: %d failed requests", ep, r.errors)
		}
		res[ep] = r
		fmt.Fprintf(out, "%s path: /%-8s %8.0f req/s  p50 %-10s p99 %s\n", name, ep, r.rps, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond))
	}
	return res, nil
}

func get(c *http.Client, u string) ([]byte, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return b, err
}

// drive runs conns workers requesting urls (machine i from clients[i]),
// each worker taking machines w, w+conns, …, for d, or, with d 0, until
// total requests are done.
func drive(clients []*http.Client, urls []string, conns int, d time.Duration, total int) result {
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for i := w; ; i += conns {
				if d == 0 && i >= total {
					break
				}
				if d > 0 && time.Now().After(deadline) {
					break
				}
				m := i % len(urls)
				t0 := time.Now()
				if _, err := get(clients[m], urls[m]); err != nil {
					bad++
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	r := result{errors: errs}
	if len(lat) > 0 {
		r.rps = float64(len(lat)) / elapsed.Seconds()
		r.p50 = lat[len(lat)/2]
		r.p99 = lat[len(lat)*99/100]
	}
	return r
}
