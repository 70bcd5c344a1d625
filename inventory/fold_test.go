package inventory

import (
	"context"
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
)

// The folder's decisions, step by step: a run's first event is stored, its
// repeats within FoldWindow are counted, the first after it is stored with
// the count; runs of other keys and machines are their own; an event that
// is not a repeat ends its machine's runs.
func TestFolder(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var f folder
	steps := []struct {
		at      time.Duration
		mac     int
		key     string
		store   bool
		repeats int
	}{
		{0, 1, "discover", true, 0},
		{time.Second, 1, "discover", false, 0},
		{2 * time.Second, 1, "offer 10.0.0.5", true, 0}, // another step: its own run
		{3 * time.Second, 2, "discover", true, 0},       // another machine
		{5 * time.Second, 1, "discover", false, 0},
		{FoldWindow - time.Millisecond, 1, "discover", false, 0},
		{FoldWindow, 1, "discover", true, 3}, // stands for the three counted
		{FoldWindow + time.Second, 1, "discover", false, 0},
		{FoldWindow + 2*time.Second, 1, "", true, 0},               // a TFTP fetch, booted: not a repeat
		{FoldWindow + 3*time.Second, 1, "discover", true, 0},       // a new boot starts a new run
		{FoldWindow + 4*time.Second, 1, "offer 10.0.0.5", true, 0}, // its run ended too
		{FoldWindow + 4*time.Second, 2, "discover", true, 0},       // a window after machine 2's first
		{FoldWindow + 5*time.Second, 2, "discover", false, 0},
		{FoldWindow, 2, "discover", true, 1}, // the clock stepped back: stored, not folded until it catches up
		{FoldWindow + time.Second, 2, "discover", false, 0},
	}
	folded := 0
	for i, s := range steps {
		ev := Event{MAC: testMAC(s.mac), At: t0.Add(s.at), Kind: event.DHCPOffer, IP: testIP(5), Repeat: s.key}
		if got := f.fold(&ev); got != s.store || ev.Repeats != s.repeats {
			t.Errorf("step %d (%v, machine %d, %q): store %v with %d repeats, want %v with %d",
				i, s.at, s.mac, s.key, got, ev.Repeats, s.store, s.repeats)
		}
		if !s.store {
			folded++
		}
	}
	// What a repeat has in common with its run is more than Repeat: an
	// offer of another address, of another kind, another site or boot is
	// a step of its own.
	t1 := t0.Add(FoldWindow + 6*time.Second)
	base := Event{MAC: testMAC(3), At: t1, Kind: event.DHCPOffer, Site: "lab", IP: testIP(5), Repeat: "}"}
	if !f.fold(&base) {
		t.Fatal("the first offer to machine 3 folded")
	}
	for name, change := range map[string]func(*Event){
		"address": func(ev *Event) { ev.IP = testIP(6) },
		"kind":    func(ev *Event) { ev.Kind = event.DHCPAck },
		"site":    func(ev *Event) { ev.Site = "second" },
		"boot":    func(ev *Event) { ev.BootID = "b2" },
		"version": func(ev *Event) { ev.Version = "c2" },
		"source":  func(ev *Event) { ev.Source = "10.0.0.9:68" },
	} {
		ev := base
		ev.At = t1.Add(time.Second)
		change(&ev)
		if !f.fold(&ev) {
			t.Errorf("an event with another %s folded into the run", name)
		}
	}
	again := base
	again.At = t1.Add(2 * time.Second)
	if f.fold(&again) {
		t.Error("the same offer again was stored, want folded")
	}
	folded++
	if got := f.folded.Load(); got != uint64(folded) {
		t.Errorf("folded %d, want %d", got, folded)
	}
}

// A machine's runs are bounded: past maxRuns keys, the oldest is forgotten
// and its next event is stored again.
func TestFolderBoundsRuns(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var f folder
	for i := range maxRuns + 1 {
		ev := Event{MAC: testMAC(1), At: t0, Repeat: string(rune('a' + i))}
		if !f.fold(&ev) {
			t.Fatalf("key %d: folded, want stored (a new run)", i)
		}
	}
	if got := len(f.runs[testMAC(1)]); got != maxRuns {
		t.Errorf("%d runs remembered, want %d", got, maxRuns)
	}
	first := Event{MAC: testMAC(1), At: t0.Add(time.Second), Repeat: "a"}
	if !f.fold(&first) {
		t.Error("the oldest run's key folded after it was forgotten")
	}
	last := Event{MAC: testMAC(1), At: t0.Add(time.Second), Repeat: string(rune('a' + maxRuns))}
	if f.fold(&last) {
		t.Error("the newest run's repeat stored, want folded")
	}
}

// Through the database: a client that does the same DHCP exchange many
// times a second leaves one row per FoldWindow, which says how many it
// stands for, and its machine row is what storing every event would have
// made it; a rebuild's transition ends the runs, so the next exchange is
// stored and moves the machine on.
func TestRecordFoldsRepeats(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	mac := testMAC(7)
	exchange := func() {
		for _, s := range []struct {
			kind event.Kind
			ip   bool
		}{{event.DHCPDiscover, false}, {event.DHCPOffer, true}, {event.DHCPRequest, false}, {event.DHCPAck, true}} {
			// One Repeat for every kind: the kind tells the steps apart.
			ev := Event{MAC: mac, Site: "lab", Kind: s.kind, Detail: `{"xid":"0x1"}`, Repeat: "}"}
			if s.ip {
				ev.IP = testIP(5)
			}
			if err := db.Record(ctx, ev); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Millisecond)
		}
	}
	for range 50 { // 50 exchanges in 5 s, then one a window later
		exchange()
		clk.Advance(100 * time.Millisecond)
	}
	clk.Advance(FoldWindow)
	exchange()
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := db.Events(ctx, mac, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 8 {
		t.Fatalf("%d events stored, want 8 (the first exchange and the one after the window): %+v", len(evs), evs)
	}
	for i, ev := range evs { // newest first
		want := 0
		if i < 4 {
			want = 49
		}
		if ev.Repeats != want {
			t.Errorf("event %d (%s): %d repeats, want %d", ev.ID, ev.Kind, ev.Repeats, want)
		}
	}
	if got := db.Folded(); got != 4*49 {
		t.Errorf("Folded() = %d, want %d", got, 4*49)
	}
	m, err := db.Machine(ctx, mac)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != StateBooting || m.LastIP != testIP(5) || !m.LastSeen.Equal(evs[0].At) {
		t.Errorf("machine: %s %s last seen %v, want booting %s %v", m.State, m.LastIP, m.LastSeen, testIP(5), evs[0].At)
	}

	// A rebuild that failed marks the machine failed; the DHCP exchange
	// that follows at once must still be stored and move it on.
	if err := db.do(ctx, func(t *tx) error {
		return t.recordTransition(Rebuild{MAC: mac, Site: "lab", State: RebuildFailed, Reason: "test"})
	}); err != nil {
		t.Fatal(err)
	}
	if m, _ := db.Machine(ctx, mac); m.State != StateFailed {
		t.Fatalf("machine %s after a failed rebuild, want failed", m.State)
	}
	exchange()
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ := db.Machine(ctx, mac); m.State != StateBooting {
		t.Errorf("machine %s after a DHCP exchange, want booting: the exchange was folded", m.State)
	}
}
