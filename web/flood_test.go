package web

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/undercloud/undercloud/dhcp"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/provision"
)

// 20,000 DISCOVERs from random MACs, recorded as the DHCP server records
// them (provision.DHCPEvents, which the dhcp.Server calls for every
// packet; driven directly here rather than through a socket, whose
// replies this test does not need), leave a bounded inventory: a WAL under
// 64 MiB and pages of under 1 MiB served in under a second. Before, every
// MAC became a machine row and the pages listed them all.
func TestRandomMACFloodStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20,000-packet flood")
	}
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	rec := provision.NewDHCPEvents(f.db, slog.New(slog.DiscardHandler))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); rec.Run(ctx) }()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	for i := range n {
		mac := make(net.HardwareAddr, 6)
		for j := range mac {
			mac[j] = byte(rng.UintN(256))
		}
		mac[0] = mac[0]&^1 | 2 // unicast, locally administered
		rec.Record(dhcp.Event{Time: f.clock.Now(), Kind: dhcp.KindDiscover, Site: "lab", MAC: mac, XID: uint32(i),
			Boot: dhcp.Boot{Firmware: dhcp.FirmwareUEFI, HasArch: true, Arch: 7, UUID: fmt.Sprintf("uuid-%d", i),
				VendorClass: "PXEClient:Arch:00007:UNDI:003016"}})
		if i%1000 == 999 {
			f.clock.Advance(time.Second) // the flood takes 20 s of the server's clock
		}
	}
	if err := f.db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the observations queued
	cancel()
	wg.Wait()
	if err := f.db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	discovered, err := f.db.Machines(context.Background(), inventory.MachineFilter{Discovered: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(discovered) > inventory.DefaultDiscoveryRate+1 { // +1: the fixture's unknown machine
		t.Errorf("%d discovered machines after a minute's flood, want at most %d", len(discovered), inventory.DefaultDiscoveryRate+1)
	}
	if d := f.db.DiscoveriesDropped(); d < n-inventory.DefaultDiscoveryRate {
		t.Errorf("dropped %d of the flood, want at least %d", d, n-inventory.DefaultDiscoveryRate)
	}
	fi, err := os.Stat(f.dbPath + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("WAL after the flood: %.1f MiB; discovered machines: %d", float64(fi.Size())/(1<<20), len(discovered))
	if fi.Size() > inventory.WALLimit {
		t.Errorf("WAL %d MiB, want at most %d", fi.Size()>>20, inventory.WALLimit>>20)
	}
	for _, path := range []string{"/", "/machines", "/discovered", "/api/v1/machines", "/api/v1/discovered", "/api/v1/sites"} {
		// The fastest of three: make test runs this beside the QEMU lab,
		// whose load once stretched one answer of 14 ms to 1.15 s. A page
		// that is slow by itself (a scan of the flood) is slow every time.
		var code int
		var body []byte
		took := time.Duration(math.MaxInt64)
		for range 3 {
			start := time.Now()
			code, body = f.call(viewerSecret, http.MethodGet, path, nil)
			took = min(took, time.Since(start))
		}
		t.Logf("%s: %d bytes in %v", path, len(body), took)
		if code != http.StatusOK {
			t.Errorf("%s: %d %s", path, code, body)
		}
		if len(body) > 1<<20 || took > time.Second {
			t.Errorf("%s: %d bytes in %v, want under 1 MiB in under 1 s", path, len(body), took)
		}
	}
	// The API pages through all of them.
	seen, pages := 0, 0
	for next := "/api/v1/discovered?limit=400"; next != ""; pages++ {
		var page struct {
			Machines []DiscoveredView `json:"machines"`
			Next     string           `json:"next"`
		}
		f.getJSON(next, &page)
		seen += len(page.Machines)
		next = page.Next
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if seen != len(discovered) {
		t.Errorf("paged through %d discovered machines, want %d", seen, len(discovered))
	}

	// Retention then prunes them by count.
	p, err := f.db.Prune(context.Background(), inventory.Retention{Discovered: 100})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(discovered) - 100; p.Discovered != want {
		t.Errorf("pruned %d discovered machines, want %d", p.Discovered, want)
	}
}

// The SQL page runs two queries at once; a third waits for a slot and,
// finding none within queryWait, is told to come back (429).
func TestQueryConcurrencyCapped(t *testing.T) {
	f := newFixture(t, func(s *Server) { s.QueryTimeout = queryWait + 3*time.Second })
	slow := `WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT count(*) FROM r`
	var wg sync.WaitGroup
	for range maxQueries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.query(viewerSecret, slow)
		}()
	}
	time.Sleep(300 * time.Millisecond) // both are running
	start := time.Now()
	code, _, msg := f.query(viewerSecret, `SELECT 1`)
	took := time.Since(start)
	if code != http.StatusTooManyRequests || !strings.Contains(msg, "already running") {
		t.Errorf("a third query: %d %q, want 429 saying why", code, msg)
	}
	if took < queryWait-100*time.Millisecond {
		t.Errorf("refused after %v, want a wait of %v first", took, queryWait)
	}
	wg.Wait()
	if code, _, msg := f.query(viewerSecret, `SELECT 1`); code != http.StatusOK {
		t.Errorf("a query once the others ended: %d %s", code, msg)
	}
}
