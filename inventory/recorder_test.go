package inventory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// Events recorded while the writer is busy wait in memory, then are stored
// in one write that applies each machine's events in order.
func TestRecordBuffersAndFolds(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	release := hold(t, db)
	seq := map[int][]event.Kind{
		1: {event.DHCPDiscover, event.DHCPAck, event.IPXEScript, event.Booted},  // ends provisioned
		2: {event.Booted, event.Heartbeat, event.DHCPDiscover, event.DHCPOffer}, // ends booting again
		3: {event.Ignition, event.IgnitionDenied},                               // a refused config leaves it booting
	}
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for step := range 4 {
			for mac := 1; mac <= 3; mac++ {
				if step >= len(seq[mac]) {
					continue
				}
				clk.Advance(time.Millisecond)
				ev := Event{MAC: testMAC(mac), Site: "lab", Kind: seq[mac][step], Version: "c9", IP: testIP(mac)}
				if err := db.Record(ctx, ev); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	select {
	case <-recorded:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked while the writer was busy")
	}
	release()
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for mac, want := range map[int]State{1: StateProvisioned, 2: StateBooting, 3: StateBooting} {
		m, err := db.Machine(ctx, testMAC(mac))
		if err != nil {
			t.Fatal(err)
		}
		if m.State != want || m.LastIP != testIP(mac) || m.Site != "lab" {
			t.Errorf("machine %d: %s %s %q, want %s %s lab", mac, m.State, m.LastIP, m.Site, want, testIP(mac))
		}
		if wantV := map[int]string{1: "c9", 2: "c9", 3: ""}[mac]; m.CurrentVersion != wantV {
			t.Errorf("machine %d: current version %q, want %q", mac, m.CurrentVersion, wantV)
		}
		evs, err := db.Events(ctx, testMAC(mac), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != len(seq[mac]) {
			t.Fatalf("machine %d: %d events, want %d", mac, len(evs), len(seq[mac]))
		}
		for i, ev := range evs {
			if k := seq[mac][len(evs)-1-i]; ev.Kind != k {
				t.Errorf("machine %d: event %d (newest first) is %s, want %s", mac, i, ev.Kind, k)
			}
			if !m.LastSeen.Equal(evs[0].At) || !m.FirstSeen.Equal(evs[len(evs)-1].At) {
				t.Errorf("machine %d: seen %s..%s, events %s..%s", mac, m.FirstSeen, m.LastSeen, evs[len(evs)-1].At, evs[0].At)
			}
		}
	}
}

// Concurrent recorders lose nothing, beyond the in-memory limit too.
func TestRecordConcurrent(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, nil)
	db.rec.limit = 4096
	const goroutines, each = 8, 1000 // 8000 > the limit
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if err := db.Record(ctx, Event{MAC: testMAC(g*each + i%10), Kind: event.DHCPDiscover}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.read.QueryRow(`SELECT count(*) FROM boot_events`).Scan(&n); err != nil || n != goroutines*each {
		t.Errorf("%d events stored (%v), want %d", n, err, goroutines*each)
	}
	if err := db.read.QueryRow(`SELECT count(*) FROM machines`).Scan(&n); err != nil || n != goroutines*10 {
		t.Errorf("%d machines (%v), want %d", n, err, goroutines*10)
	}
}

// An event is stored even when the request that recorded it is over.
func TestRecordOutlivesContext(t *testing.T) {
	db := openTest(t, nil)
	release := hold(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	if err := db.Record(ctx, Event{MAC: testMAC(1), Kind: event.IPXEScript}); err != nil {
		t.Fatal(err)
	}
	cancel()
	release()
	// Wait for the gathered write to be queued and run, without Flush,
	// which would store the buffered event itself.
	time.Sleep(3 * eventGather)
	if err := db.do(context.Background(), func(*tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if evs, err := db.Events(context.Background(), testMAC(1), 0); err != nil || len(evs) != 1 {
		t.Errorf("events: %v, %v; want the one recorded", evs, err)
	}
}

// The writer keeps the machine rows it read or wrote for events; every
// other write of a machine, and every write that rolls back, must leave it
// telling what the database holds.
func TestMachineCacheFollowsOtherWrites(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newClock())
	record := func(mac sites.MAC, kinds ...event.Kind) {
		t.Helper()
		for _, k := range kinds {
			if err := db.Record(ctx, Event{MAC: mac, Site: "lab", Kind: k}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	state := func(mac sites.MAC) State {
		t.Helper()
		m, err := db.Machine(ctx, mac)
		if err != nil {
			t.Fatal(err)
		}
		return m.State
	}

	// Marked failed behind the cache's back: the next offer moves it on
	// from failed (to booting), not from the cached booting (no write).
	a := testMAC(1)
	record(a, event.DHCPDiscover)
	if err := db.do(ctx, func(t *tx) error { return t.setMachineFailed(a) }); err != nil {
		t.Fatal(err)
	}
	record(a, event.DHCPOffer)
	if got := state(a); got != StateBooting {
		t.Errorf("after failed, then an offer: %s, want %s", got, StateBooting)
	}

	// A write that stored events and then failed is undone: the machine it
	// created does not exist, and the next event creates it.
	b := testMAC(2)
	failed := errors.New("the rest of the write failed")
	err := db.do(ctx, func(t *tx) error {
		if _, err := t.storeEvents([]Event{{MAC: b, Site: "lab", Kind: event.Booted, At: time.Now()}}, false); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("write: %v, want %v", err, failed)
	}
	if _, err := db.Machine(ctx, b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("machine of a rolled-back write: %v, want not found", err)
	}
	record(b, event.DHCPDiscover)
	if got := state(b); got != StateBooting {
		t.Errorf("after the rolled-back write, then a discover: %s, want %s", got, StateBooting)
	}
}

// A write someone waits for, queued behind the events a storm buffered
// while the writer was busy, commits with at most eventsPerWrite of them;
// the rest are stored by writes queued by themselves, without a Flush.
func TestEventsWriteBounded(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, nil)
	stored := func() int {
		t.Helper()
		var n int
		if err := db.read.QueryRow(`SELECT count(*) FROM boot_events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const events = 4 * eventsPerWrite
	release := hold(t, db)
	for i := range events {
		if err := db.Record(ctx, Event{MAC: testMAC(i % 10), Kind: event.DHCPDiscover, Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitQueued(t, db, 1) // the events' write, after eventGather
	waiter := make(chan error, 1)
	ahead := 0 // events stored before it or in its transaction
	go func() {
		waiter <- db.do(ctx, func(t *tx) error {
			return t.QueryRowContext(t.ctx, `SELECT count(*) FROM boot_events`).Scan(&ahead)
		})
	}()
	waitQueued(t, db, 2)
	release()
	if err := <-waiter; err != nil {
		t.Fatal(err)
	}
	if ahead == 0 || ahead > eventsPerWrite {
		t.Errorf("the waiting write committed with %d events, want 1 to %d", ahead, eventsPerWrite)
	}
	deadline := time.Now().Add(10 * time.Second)
	for stored() < events {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events stored 10 s later", stored(), events)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
