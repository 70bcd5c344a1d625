package pxe

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/undercloud/undercloud/images"
	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/testvm/testkit"
)

const (
	macA     = "52:54:00:00:00:0a"
	macB     = "52:54:00:00:00:0b"
	macInst  = "52:54:00:00:00:1c"
	version1 = "3f9c2e1d0a7b4c5e6f708192a3b4c5d6e7f80912"
	configA  = `{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["ssh-ed25519 AAAA secret-config-marker"]}]}}`
)

// fakeTargets answers from a fixed table and remembers the hints it saw.
type fakeTargets struct {
	mu    sync.Mutex
	m     map[string]Target
	hints map[string]Hints
}

func (f *fakeTargets) Target(_ context.Context, mac string, h Hints) (Target, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hints[mac] = h
	return f.m[mac], nil // the zero Target boots nothing
}

func (f *fakeTargets) hintsOf(mac string) Hints {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hints[mac]
}

// fakeConfigs answers from a table and remembers the requests.
type fakeConfigs struct {
	m    map[string]string // "mac version" -> config
	mu   sync.Mutex
	reqs []ConfigRequest
}

func (f *fakeConfigs) Config(_ context.Context, req ConfigRequest) ([]byte, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	c, ok := f.m[req.MAC+" "+req.Version]
	if !ok {
		return nil, fmt.Errorf("config of %s at %s: %w", req.MAC, req.Version, ErrNotFound)
	}
	return []byte(c), nil
}

// last returns the latest request.
func (f *fakeConfigs) last(t *testing.T) ConfigRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("no config requested")
	}
	return f.reqs[len(f.reqs)-1]
}

type fakeCallbacks struct {
	mu      sync.Mutex
	booted  []BootReport
	beating []BootReport
}

func (f *fakeCallbacks) Booted(_ context.Context, r BootReport) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.booted = append(f.booted, r)
	return nil
}

func (f *fakeCallbacks) Heartbeat(_ context.Context, r BootReport) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beating = append(f.beating, r)
	return nil
}

// fakeSources says whose address a request comes from: every machine is at
// 127.0.0.1, where the tests' curl runs, unless moved elsewhere, when
// requests naming it come from a foreign address.
type fakeSources struct {
	mu    sync.Mutex
	moved map[string]netip.Addr
}

func (f *fakeSources) Allowed(_ context.Context, mac string, ip netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	own, ok := f.moved[mac]
	if !ok {
		own = netip.MustParseAddr("127.0.0.1")
	}
	return ip == own
}

// move puts machine mac at ip.
func (f *fakeSources) move(mac string, ip netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moved[mac] = ip
}

// bootEnv is a machine-facing HTTP server over a real store, with fakes for
// what the inventory and the site versions would answer.
type bootEnv struct {
	srv            *httptest.Server
	h              *HTTP
	kernel, initrd []byte
	targets        *fakeTargets
	configs        *fakeConfigs
	callbacks      *fakeCallbacks
	sources        *fakeSources
	events         *events
	metrics        *metrics
	clock          *testkit.Clock
	logs           *testkit.SyncBuffer
}

func newBootEnv(t *testing.T) *bootEnv {
	t.Helper()
	e := &bootEnv{
		kernel:    testkit.RandomBytes(t, 400<<10),
		initrd:    testkit.RandomBytes(t, 150<<10),
		callbacks: &fakeCallbacks{},
		sources:   &fakeSources{moved: map[string]netip.Addr{}},
		events:    &events{},
		metrics:   &metrics{},
		clock:     testkit.New(time.Now()),
		logs:      &testkit.SyncBuffer{},
	}
	src := t.TempDir()
	store := &images.Store{Dir: t.TempDir(), ArtifactRoot: src}
	for _, b := range [][]byte{e.kernel, e.initrd} {
		p := filepath.Join(src, testkit.SHA256Hex(b))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := store.Import(context.Background(), sites.Artifact{Path: p, SHA256: testkit.SHA256Hex(b)}); err != nil {
			t.Fatal(err)
		}
	}
	known := Target{
		Kind: TargetKnown, Site: "lab", Role: "worker", Version: version1, Mode: ModeLive,
		Kernel: testkit.SHA256Hex(e.kernel), Initrd: testkit.SHA256Hex(e.initrd),
		KernelArgs: []string{"console=ttyS0", "ignition.firstboot"},
	}
	a, b, inst := known, known, known
	a.Machine, b.Machine, inst.Machine = "a", "b", "inst"
	inst.Mode = ModeInstall
	e.targets = &fakeTargets{m: map[string]Target{macA: a, macB: b, macInst: inst}, hints: map[string]Hints{}}
	e.configs = &fakeConfigs{m: map[string]string{macA + " " + version1: configA, macB + " " + version1: `{"ignition":{"version":"3.4.0"}}`}}
	e.h = &HTTP{
		Targets:   e.targets,
		Configs:   e.configs,
		Artifacts: store,
		Tokens:    &Tokens{Key: []byte("test key of thirty-two bytes...."), Now: e.clock.Now},
		Sources:   e.sources,
		Callbacks: e.callbacks,
		Recorder:  e.events,
		Metrics:   e.metrics,
		Log:       slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	handler, err := e.h.Handler()
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(handler)
	t.Cleanup(e.srv.Close)
	return e
}

// response is what curl got.
type response struct {
	status int
	header http.Header
	body   []byte
}

// curl runs the real client against url with extra arguments.
func curl(t *testing.T, url string, args ...string) response {
	t.Helper()
	need(t, "curl", "curl")
	dir := t.TempDir()
	hdr, body := filepath.Join(dir, "header"), filepath.Join(dir, "body")
	all := append([]string{"-sS", "--max-time", "20", "--path-as-is", "-D", hdr, "-o", body, "-w", "%{http_code}"}, args...)
	out, err := run(t, "", "curl", append(all, url)...)
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", url, err, out)
	}
	status, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("curl %s: status %q", url, out)
	}
	r := response{status: status, header: http.Header{}}
	if b, err := os.ReadFile(body); err == nil {
		r.body = b
	}
	tp := textproto.NewReader(bufio.NewReader(strings.NewReader(string(testkit.ReadFile(t, hdr)))))
	if _, err := tp.ReadLine(); err != nil { // status line
		t.Fatalf("curl %s: no header: %v", url, err)
	}
	mh, err := tp.ReadMIMEHeader()
	if err != nil && len(mh) == 0 {
		t.Fatalf("curl %s: header: %v", url, err)
	}
	r.header = http.Header(mh)
	return r
}

// scriptURLs reads what iPXE would fetch from a provisioning script.
type scriptURLs struct {
	kernel, initrd, ignition, booted string
}

func parseScript(t *testing.T, script string) scriptURLs {
	t.Helper()
	var u scriptURLs
	for _, line := range strings.Split(script, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "kernel":
			u.kernel = f[1]
			for _, arg := range f[2:] {
				if v, ok := strings.CutPrefix(arg, DefaultIgnitionArg+"="); ok {
					u.ignition = v
					// The script passes no callback URL any more (the
					// config carries it): the boot's booted URL has the
					// config URL's query.
					u.booted = strings.Replace(v, "/ignition?", "/booted?", 1)
				}
			}
		case len(f) == 4 && f[0] == "initrd" && f[2] == "initrd":
			u.initrd = f[3]
		}
	}
	if u.kernel == "" || u.initrd == "" || u.ignition == "" || u.booted == "" {
		t.Fatalf("script lacks a URL: %+v\n%s", u, script)
	}
	return u
}

// ipxeExpand does what iPXE does to the chain script's URL.
func ipxeExpand(chainURL, mac string) string {
	return strings.NewReplacer(
		"${mac}", mac,
		"${uuid}", "8d3f0a4e-1b2c-4d5e-8f90-0123456789ab",
		"${serial:uristring}", url.QueryEscape("SN 123&x"),
		"${buildarch}", "x86_64",
		"${platform}", "pcbios",
	).Replace(chainURL)
}

// scriptFor walks boot.ipxe and /ipxe as iPXE would, for mac.
func (e *bootEnv) scriptFor(t *testing.T, mac string) string {
	t.Helper()
	chain := curl(t, e.srv.URL+"/boot.ipxe")
	if chain.status != 200 || !strings.HasPrefix(string(chain.body), "#!ipxe\n") {
		t.Fatalf("boot.ipxe: %d\n%s", chain.status, chain.body)
	}
	var next string
	for _, line := range strings.Split(string(chain.body), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "chain" {
			next = f[1]
		}
	}
	if !strings.HasPrefix(next, e.srv.URL+"/ipxe?mac=${mac}&") {
		t.Fatalf("boot.ipxe chains to %q, want an absolute URL on %s", next, e.srv.URL)
	}
	r := curl(t, ipxeExpand(next, mac))
	if r.status != 200 || r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("ipxe script: %d %v\n%s", r.status, r.header, r.body)
	}
	return string(r.body)
}
