package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// genConfig is what the load generator is told, as JSON, by the benchmark
// that started it inside the machines' namespace.
type genConfig struct {
	DHCPServer string        // "10.0.0.1:67"
	Relay      string        // giaddr, an address of the namespace
	Ramp       time.Duration // machine i powers on at i*Ramp/N
	Conns      int           // machines in their HTTP phases at once (one connection each)
	Timeout    time.Duration // per HTTP request, body included (default 10m: 500 machines share a 1 Gbit/s link)
	Machines   []machineSpec
}

// machineSpec is one simulated machine.
type machineSpec struct {
	Name, MAC, IP, UUID string
}

// The phases of a boot, in order; each machine's result times every one.
// "wait" is the time a machine waited for one of the Conns slots after its
// DHCP exchange.
var phases = []string{"dhcp", "wait", "script", "kernel", "initrd", "rootfs", "ignition", "booted"}

// machineResult is one machine's boot.
type machineResult struct {
	Name   string
	Err    string                   `json:",omitempty"`
	Phases map[string]time.Duration `json:",omitempty"`
	Bytes  int64                    // response bodies received
	// BootedFrom says where the booted URL was found: "file <path>" of
	// the Ignition config, "unit <name>", or "kernel argument".
	BootedFrom string `json:",omitempty"`
	DHCPSends  int    // DHCP packets sent: 2 without retransmissions
}

// genResult is the storm's outcome, written as JSON on stdout.
type genResult struct {
	Start, End time.Time
	Machines   []machineResult
	// UDP datagrams the kernel dropped for a full socket buffer, in the
	// machines' namespace and in the server's (set by the benchmark).
	DropsGen, DropsServer int `json:"-"`
}

// storm powers on every machine within cfg.Ramp and boots each through
// DHCP and the HTTP chain; it returns when all have finished or failed.
func storm(ctx context.Context, cfg genConfig) (genResult, error) {
	r, err := newRelay(cfg.Relay, cfg.DHCPServer)
	if err != nil {
		return genResult{}, err
	}
	defer r.Close()
	if cfg.Conns <= 0 {
		cfg.Conns = 512
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	slots := make(chan struct{}, cfg.Conns)
	res := genResult{Start: time.Now(), Machines: make([]machineResult, len(cfg.Machines))}
	var wg sync.WaitGroup
	for i, m := range cfg.Machines {
		at := res.Start.Add(time.Duration(int64(cfg.Ramp) * int64(i) / int64(max(len(cfg.Machines), 1))))
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(at))
			b := &boot{spec: m, relay: r, slots: slots, timeout: cfg.Timeout,
				res: machineResult{Name: m.Name, Phases: map[string]time.Duration{}}}
			if err := b.run(ctx); err != nil {
				b.res.Err = err.Error()
			}
			res.Machines[i] = b.res
		}()
	}
	wg.Wait()
	res.End = time.Now()
	return res, nil
}

// boot is one machine's boot in progress.
type boot struct {
	spec    machineSpec
	relay   *relay
	slots   chan struct{}
	timeout time.Duration
	ip      net.IP // its leased address, where its requests come from
	client  *http.Client
	res     machineResult
}

// timed runs fn as phase name, adding its duration to the phase.
func (b *boot) timed(name string, fn func() error) error {
	t := time.Now()
	err := fn()
	b.res.Phases[name] += time.Since(t)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (b *boot) run(ctx context.Context) error {
	var l lease
	err := b.timed("dhcp", func() (err error) { l, err = b.relay.exchange(ctx, b.spec); return err })
	b.res.DHCPSends = l.Sends
	if err != nil {
		return err
	}
	if !isHTTP(l.BootFile) {
		return fmt.Errorf("dhcp: boot file %q is not an http URL (run undercloud with --tftp-listen '')", l.BootFile)
	}
	if err := b.timed("wait", func() error {
		select {
		case b.slots <- struct{}{}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}); err != nil {
		return err
	}
	defer func() { <-b.slots }()
	// Every request comes from the machine's own leased address: the
	// server hands tokens and configs only to that (docs/boot-flow.md).
	tr := &http.Transport{
		DialContext:         (&net.Dialer{LocalAddr: &net.TCPAddr{IP: l.IP}, Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	b.client = &http.Client{Transport: tr, Timeout: b.timeout}
	b.ip = l.IP
	vars := map[string]string{
		"mac": strings.ToLower(b.spec.MAC), "uuid": b.spec.UUID, "serial": "", "buildarch": "x86_64",
		"platform": "efi", "ip": l.IP.String(),
	}

	// iPXE: the chain script, then the machine's own script.
	var plan bootPlan
	if err := b.timed("script", func() error {
		text, err := b.get(ctx, l.BootFile)
		if err != nil {
			return err
		}
		s, err := parseScript(string(text))
		if err != nil {
			return fmt.Errorf("%s: %w", l.BootFile, err)
		}
		next, err := s.chainURL(vars)
		if err != nil {
			return fmt.Errorf("%s: %w", l.BootFile, err)
		}
		if text, err = b.get(ctx, next); err != nil {
			return err
		}
		if s, err = parseScript(string(text)); err != nil {
			return fmt.Errorf("%s: %w", next, err)
		}
		plan, err = s.plan(vars)
		return err
	}); err != nil {
		return err
	}
	// Each image from its first URL that works, as iPXE's "||" does, over
	// a connection of its own (fetchToNull): the scripts' one is closed, so
	// a machine holds one connection at a time, as iPXE does, and 512
	// machines stay within the server's --max-conns of 1024.
	tr.CloseIdleConnections()
	var kernelArgs []string
	if err := b.timed("kernel", func() error {
		var errs []error
		for _, k := range plan.Kernel {
			if _, err := b.download(ctx, k.URL, false); err != nil {
				errs = append(errs, err)
				continue
			}
			kernelArgs = k.Args
			return nil
		}
		return errors.Join(errs...)
	}); err != nil {
		return err
	}
	if err := b.timed("initrd", func() error {
		for _, alts := range plan.Initrds {
			var errs []error
			for _, u := range alts {
				_, err := b.download(ctx, u, false)
				if err == nil {
					errs = nil
					break
				}
				errs = append(errs, err)
			}
			if errs != nil {
				return errors.Join(errs...)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// The kernel runs: what follows are new connections of the booted OS.
	tr.CloseIdleConnections()
	if u := rootfsURL(kernelArgs); u != "" {
		if err := b.timed("rootfs", func() error { _, err := b.download(ctx, u, true); return err }); err != nil {
			return err
		}
	}
	cfgURL := ignitionURL(kernelArgs)
	if cfgURL == "" {
		return fmt.Errorf("no ignition.config.url in the kernel arguments %q", kernelArgs)
	}
	var config []byte
	if err := b.timed("ignition", func() (err error) { config, err = b.get(ctx, cfgURL); return err }); err != nil {
		return err
	}
	return b.timed("booted", func() error {
		u, from, err := bootedURL(config, kernelArgs)
		if err != nil {
			return err
		}
		b.res.BootedFrom = from
		body, _ := json.Marshal(map[string]string{"hostname": b.spec.Name})
		_, err = b.do(ctx, http.MethodPost, u, body)
		return err
	})
}

// get fetches a small document (a script, a config).
func (b *boot) get(ctx context.Context, url string) ([]byte, error) {
	return b.do(ctx, http.MethodGet, url, nil)
}

func (b *boot) do(ctx context.Context, method, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	b.res.Bytes += int64(len(data))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return data, nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// download fetches an artifact, checking its length against Content-Length
// and, when verify is set and the URL names a digest (/images/sha256/<hex>),
// its sha256 (as the node's initramfs checks its rootfs). What is not
// verified is dropped by the kernel (fetchToNull).
func (b *boot) download(ctx context.Context, url string, verify bool) (int64, error) {
	want := digestOf(url)
	if !verify || want == "" {
		n, err := fetchToNull(ctx, b.ip, url, b.timeout)
		b.res.Bytes += n
		return n, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	h := sha256.New()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	n, err := io.CopyBuffer(h, resp.Body, *buf)
	b.res.Bytes += n
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", url, n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("GET %s: %d bytes, Content-Length %d", url, n, resp.ContentLength)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return n, fmt.Errorf("GET %s: sha256 %s, the URL names %s", url, got, want)
	}
	return n, nil
}

// digestOf is the hex digest a content-addressed URL names, "" if none.
func digestOf(url string) string {
	_, rest, ok := strings.Cut(url, "/sha256/")
	if !ok {
		return ""
	}
	rest, _, _ = strings.Cut(rest, "?")
	rest, _, _ = strings.Cut(rest, "/")
	if len(rest) != 64 {
		return ""
	}
	if _, err := hex.DecodeString(rest); err != nil {
		return ""
	}
	return strings.ToLower(rest)
}
