package web

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
	siterepo "github.com/undercloud/undercloud/examples/site-repo"
	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/testvm/testkit"
)

// The tokens of every test server.
const (
	viewerSecret   = "viewer-secret-0123456789"
	operatorSecret = "operator-secret-0123456789"
)

var testTokens = []Token{
	{Name: "vera", Role: RoleViewer, Secret: viewerSecret},
	{Name: "otto", Role: RoleOperator, Secret: operatorSecret},
}

// Machines of the example site repo's lab site.
const (
	macM1      = sites.MAC("52:54:00:99:00:11") // lab-m1: booted on v1, outdated
	macW1      = sites.MAC("52:54:00:99:00:21") // lab-w1: booting now
	macUnknown = sites.MAC("52:54:00:99:00:99") // in no config
)

// trackerSites adapts a real sites.Tracker to Sites, as the composition
// root does; refreshes run at once, so tests see their result.
type trackerSites struct {
	t         *testing.T
	tracker   *sites.Tracker
	mu        sync.Mutex
	refreshes []bool
	fetch     *sites.FetchStatus // replaces the repo's, when set
}

func (s *trackerSites) Status() []sites.SiteStatus         { return s.tracker.Status() }
func (s *trackerSites) Release(site string) *sites.Release { return s.tracker.Release(site) }
func (s *trackerSites) Refresh(retry bool) {
	s.mu.Lock()
	s.refreshes = append(s.refreshes, retry)
	s.mu.Unlock()
}

func (s *trackerSites) FetchStatus() sites.FetchStatus {
	if s.fetch != nil {
		return *s.fetch
	}
	return s.tracker.Repo.Status()
}

func (s *trackerSites) refreshCalls() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.refreshes...)
}

// fixture is a web server over a real inventory, filled through its public
// API from the example site repo: lab on v1 then v2 then a rejected
// v3-broken, lab-m1 booted on v1 (so outdated), lab-w1 booting, an unknown
// machine discovered.
type fixture struct {
	t        *testing.T
	clock    *testkit.Clock
	db       *inventory.DB
	dbPath   string
	ro       *sql.DB
	repo     *siterepo.Repo
	sites    *trackerSites
	rebuilds *fakeRebuilds
	metrics  *Metrics
	logs     *testkit.SyncBuffer
	srv      *Server
	http     *httptest.Server
	versions map[string]string // tag -> commit
}

// newFixture builds the fixture; edit, if not nil, adjusts the Server
// before its handler is made.
func newFixture(t *testing.T, edit func(*Server)) *fixture {
	t.Helper()
	ctx := context.Background()
	tmp := t.TempDir()
	f := &fixture{t: t, clock: testkit.New(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)), logs: &testkit.SyncBuffer{},
		versions: map[string]string{}}
	var err error
	if f.repo, err = siterepo.Build(filepath.Join(tmp, "repo"), siterepo.Options{}); err != nil {
		t.Fatal(err)
	}
	f.dbPath = filepath.Join(tmp, "inventory.db")
	if f.db, err = inventory.Open(ctx, f.dbPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	f.db.Now = f.clock.Now
	tracker := &sites.Tracker{
		Repo:  &sites.Repo{URL: f.repo.Dir, Dir: filepath.Join(tmp, "mirror")},
		Gate:  sites.Gate{Renderer: ignition.Renderer{}},
		Store: f.db,
		OnActivate: func(r *sites.Release) {
			if err := f.db.DeclareMachines(ctx, r); err != nil {
				t.Errorf("declare machines: %v", err)
			}
		},
	}
	f.sites = &trackerSites{t: t, tracker: tracker}
	f.refresh(tracker)
	f.versions["v1"] = tracker.Release("lab").Version.Commit
	f.bootFully(macM1, "lab", f.versions["v1"], "boot-m1")
	f.lease(macM1, "10.99.0.11", "lab-m1")
	for _, step := range []struct {
		site, ref string
	}{{"lab", "v2"}, {"lab", "v3-broken"}} {
		if _, err := f.repo.Bind(step.site, step.ref); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
		f.refresh(tracker)
	}
	f.versions["v2"] = tracker.Release("lab").Version.Commit
	f.booting(macW1, "lab", f.versions["v2"])
	if err := f.db.Observe(ctx, inventory.Observation{MAC: macUnknown, Site: "lab", IP: netip.MustParseAddr("10.99.0.150"),
		Arch: "7", VendorClass: "PXEClient:Arch:00007:UNDI:003016"}); err != nil {
		t.Fatal(err)
	}
	f.record(inventory.Event{MAC: macUnknown, Site: "lab", Kind: event.DHCPDiscover, At: f.clock.Now()})
	if f.ro, err = inventory.OpenReadOnly(ctx, f.dbPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.ro.Close() })
	f.rebuilds = &fakeRebuilds{db: f.db, sites: f.sites, now: f.clock.Now}
	f.metrics = NewMetrics("test")
	done := make(chan struct{})
	f.srv = &Server{
		DB: f.db, ReadOnly: f.ro, Sites: f.sites, Rebuilds: f.rebuilds, Tokens: testTokens, Metrics: f.metrics,
		Boot: bootEcho(), Log: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now: f.clock.Now, Version: "v9.9.9-test", QueryTimeout: 2 * time.Second, Done: done,
	}
	if edit != nil {
		edit(f.srv)
	}
	h, err := f.srv.Handler()
	if err != nil {
		t.Fatal(err)
	}
	f.http = httptest.NewServer(h)
	t.Cleanup(func() {
		close(done) // ends event streams, or Close waits for them
		f.http.Close()
		for _, secret := range []string{viewerSecret, operatorSecret} {
			if strings.Contains(f.logs.String(), secret) {
				t.Errorf("the log shows a token secret:\n%s", f.logs.String())
			}
		}
	})
	return f
}

func (f *fixture) refresh(tr *sites.Tracker) {
	f.t.Helper()
	if err := tr.Refresh(context.Background(), false); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) record(evs ...inventory.Event) {
	f.t.Helper()
	for _, ev := range evs {
		if _, err := f.db.RecordSync(context.Background(), ev); err != nil {
			f.t.Fatal(err)
		}
	}
}

// bootFully records a whole boot of mac onto version, a second per step.
func (f *fixture) bootFully(mac sites.MAC, site, version, bootID string) {
	f.t.Helper()
	ip := netip.MustParseAddr("10.99.0.11")
	at := f.clock.Now().Add(-time.Hour)
	kinds := []event.Kind{event.DHCPDiscover, event.DHCPOffer, event.DHCPRequest,
		event.DHCPAck, event.TFTP, event.IPXEChain, event.IPXEScript,
		event.Artifact, event.Ignition, event.Booted}
	for i, k := range kinds {
		ev := inventory.Event{At: at.Add(time.Duration(i) * time.Second), MAC: mac, Site: site, Kind: k, IP: ip}
		if i >= 6 {
			ev.BootID, ev.Version = bootID, version
		}
		f.record(ev)
	}
	// The core assigns the version a machine boots when it serves its script.
	m, err := f.db.Machine(context.Background(), mac)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.db.AssignVersion(context.Background(), mac, version, m.AssignedVersion); err != nil {
		f.t.Fatal(err)
	}
}

// booting records the first steps of a boot of mac, a minute ago.
func (f *fixture) booting(mac sites.MAC, site, version string) {
	f.t.Helper()
	at := f.clock.Now().Add(-time.Minute)
	for i, k := range []event.Kind{event.DHCPDiscover, event.TFTP, event.IPXEScript} {
		ev := inventory.Event{At: at.Add(time.Duration(i) * time.Second), MAC: mac, Site: site, Kind: k}
		if k == event.IPXEScript {
			ev.Version, ev.BootID = version, "boot-w1"
		}
		f.record(ev)
	}
}

func (f *fixture) lease(mac sites.MAC, ip, host string) {
	f.t.Helper()
	if _, err := f.db.Bind(context.Background(), inventory.LeaseRequest{MAC: mac, IP: netip.MustParseAddr(ip), Site: "lab",
		Hostname: host}); err != nil {
		f.t.Fatal(err)
	}
}

// bootEcho stands for the pxe handler: it answers what it got.
func bootEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Boot", "yes")
		fmt.Fprintf(w, "boot %s %s", r.Method, r.URL.RequestURI())
	})
}

// call makes an API request with a bearer token (none if empty).
func (f *fixture) call(secret, method, path string, body any) (int, []byte) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.http.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// getJSON GETs path with the viewer token and decodes the answer into v.
func (f *fixture) getJSON(path string, v any) {
	f.t.Helper()
	code, b := f.call(viewerSecret, http.MethodGet, path, nil)
	if code != http.StatusOK {
		f.t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		f.t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// audit returns the audit log, newest first.
func (f *fixture) audit() []inventory.AuditEntry {
	f.t.Helper()
	es, err := f.db.Audit(context.Background(), 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return es
}
