package inventory

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/sites"
)

// TestAllocatePreference checks the order Allocate picks addresses in. The
// range is 10.0.0.10-10.0.0.13; the allocating client is testMAC(1).
func TestAllocatePreference(t *testing.T) {
	type setup struct {
		mac     int
		ip      int
		bind    bool          // bind, else offer
		release bool          // then release it
		decline bool          // then decline it
		dur     time.Duration // lease or offer time; 0: default
	}
	for name, tc := range map[string]struct {
		setup   []setup
		advance time.Duration // after the setup
		want    int           // last octet; 0: ErrRangeFull
		ask     int           // requested address (option 50), if not 0
	}{
		"empty range: first address":          {want: 10},
		"own released lease comes back":       {setup: []setup{{mac: 2, ip: 10, bind: true}, {mac: 1, ip: 12, bind: true, release: true}}, want: 12},
		"own expired lease comes back":        {setup: []setup{{mac: 1, ip: 13, bind: true, dur: time.Minute}}, advance: time.Hour, want: 13},
		"own lease outside the range: moves":  {setup: []setup{{mac: 1, ip: 50, bind: true}}, want: 10},
		"requested free address":              {ask: 12, want: 12},
		"requested address taken: fresh one":  {setup: []setup{{mac: 2, ip: 12, bind: true}}, ask: 12, want: 10},
		"requested address expired: granted":  {setup: []setup{{mac: 2, ip: 12, bind: true, dur: time.Minute}}, advance: time.Hour, ask: 12, want: 12},
		"requested address outside the range": {ask: 40, want: 10},
		"never-used before expired": {
			setup:   []setup{{mac: 2, ip: 10, bind: true, dur: time.Minute}},
			advance: time.Hour, want: 11,
		},
		"first expired when none is fresh": {
			setup: []setup{
				{mac: 2, ip: 10, bind: true, dur: 3 * time.Minute},
				{mac: 3, ip: 11, bind: true, dur: 1 * time.Minute},
				{mac: 4, ip: 12, bind: true, dur: 2 * time.Minute},
				{mac: 5, ip: 13, bind: true, dur: 4 * time.Minute},
			},
			advance: time.Hour, want: 11,
		},
		"offers of others are kept": {
			setup: []setup{{mac: 2, ip: 10}, {mac: 3, ip: 11}, {mac: 4, ip: 12}, {mac: 5, ip: 13}},
			want:  0,
		},
		"expired offers are reused": {
			setup:   []setup{{mac: 2, ip: 10}, {mac: 3, ip: 11}, {mac: 4, ip: 12}, {mac: 5, ip: 13}},
			advance: time.Minute, want: 10,
		},
		"declined address is held": {
			setup: []setup{{mac: 2, ip: 10, bind: true}, {mac: 3, ip: 11, bind: true}, {mac: 4, ip: 12, bind: true},
				{mac: 5, ip: 13, bind: true, decline: true, dur: time.Hour}},
			advance: 30 * time.Minute, want: 0,
		},
		"declined address after its hold": {
			setup: []setup{{mac: 2, ip: 10, bind: true, dur: 24 * time.Hour}, {mac: 3, ip: 11, bind: true, dur: 24 * time.Hour},
				{mac: 4, ip: 12, bind: true, dur: 24 * time.Hour}, {mac: 1, ip: 13, bind: true, decline: true, dur: time.Hour}},
			advance: 61 * time.Minute, want: 13,
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock()
			db := openTest(t, clk)
			for _, s := range tc.setup {
				req := LeaseRequest{MAC: testMAC(s.mac), IP: testIP(s.ip), Site: "lab", Duration: s.dur}
				var err error
				if s.bind {
					_, err = db.Bind(ctx, req)
				} else {
					_, err = db.Offer(ctx, req)
				}
				if err == nil && s.release {
					err = db.Release(ctx, req.MAC, req.IP)
				}
				if err == nil && s.decline {
					err = db.Decline(ctx, req.MAC, req.IP, s.dur)
				}
				if err != nil {
					t.Fatalf("setup %+v: %v", s, err)
				}
			}
			clk.Advance(tc.advance)
			req := LeaseRequest{MAC: testMAC(1), Site: "lab"}
			if tc.ask != 0 {
				req.IP = testIP(tc.ask)
			}
			l, err := db.Allocate(ctx, req, testRange(10, 13))
			if tc.want == 0 {
				if !errors.Is(err, ErrRangeFull) || !strings.Contains(err.Error(), "10.0.0.10-10.0.0.13") {
					t.Fatalf("got %+v, %v; want ErrRangeFull naming 10.0.0.10-10.0.0.13", l, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.IP != testIP(tc.want) || l.MAC != testMAC(1) || l.State != LeaseOffered {
				t.Fatalf("got %s %s %s, want %s offered to %s", l.IP, l.MAC, l.State, testIP(tc.want), testMAC(1))
			}
			// Stored as returned, and the client has no other row.
			got, err := db.LeaseByMAC(ctx, testMAC(1))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(l, got, addrs()); diff != "" {
				t.Errorf("stored lease (-returned +stored):\n%s", diff)
			}
		})
	}
}

// Many clients allocating from one small range at once never share an
// address, and those left over get ErrRangeFull naming the range.
func TestAllocateConcurrent(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, nil)
	r := testRange(10, 29) // 20 addresses
	const clients = 60
	ips := make([]Lease, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range clients {
		wg.Go(func() {
			<-start
			req := LeaseRequest{MAC: testMAC(i), Site: "lab"}
			ips[i], errs[i] = db.Allocate(ctx, req, r)
			if errs[i] == nil {
				// And commit it, as the DHCPREQUEST would.
				req.IP = ips[i].IP
				_, errs[i] = db.Bind(ctx, req)
			}
		})
	}
	close(start)
	wg.Wait()
	owner := map[string]int{}
	full := 0
	for i := range clients {
		switch {
		case errs[i] == nil:
			ip := ips[i].IP
			if !r.Contains(ip) {
				t.Errorf("client %d got %s, outside %s", i, ip, r.String())
			}
			if j, ok := owner[ip.String()]; ok {
				t.Errorf("clients %d and %d both got %s", j, i, ip)
			}
			owner[ip.String()] = i
		case errors.Is(errs[i], ErrRangeFull):
			full++
			if !strings.Contains(errs[i].Error(), r.String()) {
				t.Errorf("range-full error does not name the range: %v", errs[i])
			}
		default:
			t.Errorf("client %d: %v", i, errs[i])
		}
	}
	if len(owner) != 20 || full != clients-20 {
		t.Errorf("%d clients got an address and %d found the range full; want 20 and %d", len(owner), full, clients-20)
	}
	ls, err := db.Leases(ctx, "lab")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if i, ok := owner[l.IP.String()]; !ok || l.MAC != testMAC(i) || l.State != LeaseBound {
			t.Errorf("stored %s %s %s, not what client %d was given", l.IP, l.MAC, l.State, i)
		}
	}
}

// Addresses freed below the cursor, and ranges walked after a restart, are
// found again.
func TestAllocateCursor(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cursor.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	r := testRange(100, 199)
	alloc := func(mac int) (sites.MAC, int) {
		t.Helper()
		l, err := db.Allocate(ctx, LeaseRequest{MAC: testMAC(mac)}, r)
		if err != nil {
			t.Fatalf("allocate for %d: %v", mac, err)
		}
		n, _ := addrNum(l.IP)
		return l.MAC, int(n - 10<<24)
	}
	for i := range 60 {
		if _, got := alloc(i); got != 100+i {
			t.Fatalf("client %d got .%d, want .%d (in order)", i, got, 100+i)
		}
	}
	// Client 20 moves out of the range: its address is free again.
	if _, err := db.Bind(ctx, LeaseRequest{MAC: testMAC(20), IP: testIP(5)}); err != nil {
		t.Fatal(err)
	}
	if _, got := alloc(1000); got != 120 {
		t.Fatalf("after a move: got .%d, want the freed .120", got)
	}
	if _, got := alloc(1001); got != 160 {
		t.Fatalf("got .%d, want .160", got)
	}
	// A restart forgets the cursor; the first allocation walks the range.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, got := alloc(1002); got != 161 {
		t.Fatalf("after restart: got .%d, want .161", got)
	}
}

// The allocation stays cheap with many leases: after the first allocation
// of a range has walked its used addresses once, the next ones cost a small
// fraction of that walk, however many leases there are. (Compared with the
// walk rather than a fixed time, so a slow or loaded machine cannot fail it.)
func TestAllocateLargeRange(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, nil)
	const used = 10000
	fillLeases(t, db, 10<<24+1<<16, used)
	r := sites.Range{Start: numAddr(10<<24 + 1<<16), End: numAddr(10<<24 + 1<<16 + 65000)}
	start := time.Now()
	l, err := db.Allocate(ctx, LeaseRequest{MAC: testMAC(1 << 20)}, r)
	if err != nil {
		t.Fatal(err)
	}
	walk := time.Since(start)
	if want := numAddr(10<<24 + 1<<16 + used); l.IP != want {
		t.Fatalf("first allocation got %s, want %s", l.IP, want)
	}
	start = time.Now()
	const k = 100
	for i := range k {
		if _, err := db.Allocate(ctx, LeaseRequest{MAC: testMAC(1<<20 + 1 + i)}, r); err != nil {
			t.Fatal(err)
		}
	}
	per := time.Since(start) / k
	t.Logf("walk of %d leases %s, then %s per allocation", used, walk, per)
	if per > walk/2 { // a scanning allocation would cost at least the walk
		t.Errorf("an allocation takes %s, the walk of all %d leases %s: it scans", per, used, walk)
	}
}
