package inventory

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// declare stores mac as a declared machine of site lab.
func declare(t *testing.T, db *DB, mac sites.MAC, name string) {
	t.Helper()
	err := db.do(context.Background(), func(t *tx) error {
		_, err := t.exec(`INSERT INTO machines (mac, site, name, role, state, discovered) VALUES (?, 'lab', ?, 'worker', 'known', 0)`,
			string(mac), name)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func eventIDs(t *testing.T, db *DB, mac sites.MAC) []int64 {
	t.Helper()
	evs, err := db.Events(context.Background(), mac, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	return ids
}

func TestPruneEventsByAgeKeepsLastBootAndRebuilds(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	known, flood, rebuilt := testMAC(1), testMAC(2), testMAC(3)
	declare(t, db, known, "w1")
	declare(t, db, rebuilt, "w3")
	boot := func(mac sites.MAC) []Event {
		var out []Event
		for _, k := range []event.Kind{event.DHCPDiscover, event.IPXEScript, event.Booted, event.Heartbeat} {
			ev, err := db.RecordSync(ctx, Event{MAC: mac, Site: "lab", Kind: k, Version: "v1"})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ev)
			clk.Advance(time.Second)
		}
		return out
	}
	old1 := boot(known) // 40 days ago: pruned
	clk.Advance(24 * time.Hour)
	old2 := boot(known) // 39 days ago, but its last boot: kept, heartbeat aside
	for range 3 {
		boot(flood) // no machine row: nothing of it kept
	}
	boot(rebuilt)
	r, err := db.CreateRebuild(ctx, Rebuild{Site: "lab", Machine: "w3", MAC: rebuilt, Target: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	inFlight := boot(rebuilt) // old but followed by the rebuild in flight
	clk.Advance(40 * 24 * time.Hour)
	recent := boot(flood)

	p, err := db.Prune(ctx, Retention{EventsAge: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// known: the first boot (4) and the last boot's heartbeat; flood: its
	// three old boots (12); rebuilt: its first boot (4) but the rebuild's
	// transition and the boot since.
	if want := (Pruned{Events: 4 + 1 + 12 + 4}); p != want {
		t.Errorf("pruned %+v, want %+v", p, want)
	}
	_ = old1
	if diff := cmp.Diff([]int64{old2[2].ID, old2[1].ID, old2[0].ID}, eventIDs(t, db, known)); diff != "" {
		t.Errorf("events of the declared machine (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{recent[3].ID, recent[2].ID, recent[1].ID, recent[0].ID}, eventIDs(t, db, flood)); diff != "" {
		t.Errorf("events of the unknown MAC (-want +got):\n%s", diff)
	}
	got := eventIDs(t, db, rebuilt)
	if len(got) != 5 || got[len(got)-1] >= inFlight[0].ID || got[0] != inFlight[3].ID {
		t.Errorf("events of the machine rebuilt: %v, want the rebuild's transition and %v", got, inFlight)
	}
	if evs, err := db.EventsSince(ctx, rebuilt, r.Created, 0, 100); err != nil || len(evs) != 4 {
		t.Errorf("EventsSince after pruning = %d events, %v; want the 4 of the boot in flight", len(evs), err)
	}
}

func TestPruneEventsByCount(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	declare(t, db, testMAC(1), "w1")
	var ids []int64
	for i := range 50 {
		k := event.DHCPDiscover // a boot of two events, 25 of them
		if i%2 == 1 {
			k = event.Booted
		}
		ev, err := db.RecordSync(ctx, Event{MAC: testMAC(1), Kind: k})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
		clk.Advance(time.Second)
	}
	p, err := db.Prune(ctx, Retention{Events: 20})
	if err != nil {
		t.Fatal(err)
	}
	if p.Events != 30 {
		t.Errorf("pruned %d events, want the 30 oldest", p.Events)
	}
	evs, err := db.RecentEvents(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 20 || evs[len(evs)-1].ID != ids[30] {
		t.Errorf("kept %d events, the oldest %d; want the 20 newest, from %d", len(evs), evs[len(evs)-1].ID, ids[30])
	}
}

func TestPruneDiscovered(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	declare(t, db, testMAC(1), "w1")
	for i := range 10 {
		if err := db.Observe(ctx, Observation{MAC: testMAC(10 + i), Site: "lab"}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
	}
	// testMAC(10) holds a lease in use: kept, however old.
	if err := db.do(ctx, func(t *tx) error {
		_, err := t.exec(`INSERT INTO leases (ip_num, ip, mac, site, state, expires, updated) VALUES (167772170, '10.0.0.10', ?, 'lab', 'bound', '2099-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')`,
			string(testMAC(10)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// By count: keep 5 of the 10 discovered.
	p, err := db.Prune(ctx, Retention{Discovered: 5})
	if err != nil {
		t.Fatal(err)
	}
	if p.Discovered != 5 {
		t.Errorf("pruned %d discovered, want 5", p.Discovered)
	}
	ms, err := db.Machines(ctx, MachineFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var left []sites.MAC
	for _, m := range ms {
		left = append(left, m.MAC)
	}
	// Kept: the declared machine, the leased one, and the four seen last.
	want := []sites.MAC{testMAC(10), testMAC(16), testMAC(17), testMAC(18), testMAC(19), testMAC(1)}
	if diff := cmp.Diff(want, left); diff != "" {
		t.Errorf("machines left (-want +got):\n%s", diff)
	}
	// By age: 7 days later, all but the declared, the leased and the one
	// seen again are gone.
	clk.Advance(7*24*time.Hour + 8*time.Hour)
	if err := db.Observe(ctx, Observation{MAC: testMAC(19), Site: "lab"}); err != nil { // seen again
		t.Fatal(err)
	}
	if p, err = db.Prune(ctx, Retention{DiscoveredAge: 7 * 24 * time.Hour}); err != nil || p.Discovered != 3 {
		t.Errorf("prune by age: %+v, %v; want 3 discovered", p, err)
	}
	if _, err := db.Machine(ctx, testMAC(19)); err != nil {
		t.Errorf("the machine seen again: %v", err)
	}
}

func TestDiscoveryRate(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	db.DiscoveryRate = 10
	declare(t, db, testMAC(1), "w1")
	for i := range 100 {
		if err := db.Record(ctx, Event{MAC: testMAC(1000 + i), Site: "lab", Kind: event.DHCPDiscover, Repeat: "x"}); err != nil {
			t.Fatal(err)
		}
		if err := db.Observe(ctx, Observation{MAC: testMAC(1000 + i), Site: "lab", Arch: "7"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Record(ctx, Event{MAC: testMAC(1), Site: "lab", Kind: event.DHCPDiscover}); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ms, err := db.Machines(ctx, MachineFilter{Discovered: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 10 {
		t.Errorf("%d discovered machines recorded in a minute, want 10", len(ms))
	}
	if got := db.DiscoveriesDropped(); got != 180 {
		t.Errorf("dropped %d, want 180 (90 events and 90 observations)", got)
	}
	if evs, _ := db.Events(ctx, testMAC(1), 10); len(evs) != 1 {
		t.Errorf("the known machine's event: %d stored, want 1", len(evs))
	}
	// The next minute admits 10 more.
	clk.Advance(time.Minute)
	for i := range 100 {
		db.Record(ctx, Event{MAC: testMAC(2000 + i), Site: "lab", Kind: event.DHCPDiscover})
	}
	db.Flush(ctx)
	if ms, _ = db.Machines(ctx, MachineFilter{Discovered: true}); len(ms) != 20 {
		t.Errorf("%d discovered machines after two minutes, want 20", len(ms))
	}
}

func TestFillIdentity(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, nil)
	declare(t, db, testMAC(1), "w1")
	if err := db.Observe(ctx, Observation{MAC: testMAC(1), Site: "lab", UUID: "dhcp-uuid"}); err != nil {
		t.Fatal(err)
	}
	if err := db.FillIdentity(ctx, testMAC(1), "forged-uuid", "SER1"); err != nil {
		t.Fatal(err)
	}
	if err := db.FillIdentity(ctx, testMAC(1), "", "forged-serial"); err != nil {
		t.Fatal(err)
	}
	if err := db.FillIdentity(ctx, testMAC(2), "u", "s"); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(ctx); err != nil { // the writes are queued
		t.Fatal(err)
	}
	m, err := db.Machine(ctx, testMAC(1))
	if err != nil {
		t.Fatal(err)
	}
	if m.UUID != "dhcp-uuid" || m.Serial != "SER1" {
		t.Errorf("uuid %q serial %q, want DHCP's uuid kept and the empty serial filled", m.UUID, m.Serial)
	}
	if _, err := db.Machine(ctx, testMAC(2)); err == nil {
		t.Error("an iPXE hint created a machine")
	}
}

func TestMachinePage(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, nil)
	for i := range 25 {
		declare(t, db, testMAC(i), "m"+string(rune('a'+i)))
	}
	var all []sites.MAC
	f := MachineFilter{Limit: 10}
	for pages := 0; ; pages++ {
		ms, next, err := db.MachinePage(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			all = append(all, m.MAC)
		}
		if next == "" {
			if pages != 2 {
				t.Errorf("%d pages, want 3", pages+1)
			}
			break
		}
		f.After = next
	}
	if len(all) != 25 || all[0] != testMAC(0) || all[24] != testMAC(24) {
		t.Errorf("paged through %d machines: %v", len(all), all)
	}
	if _, _, err := db.MachinePage(ctx, MachineFilter{After: "!!"}); err == nil {
		t.Error("a bad cursor was accepted")
	}
}

func TestWALTruncated(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, nil)
	// Hold a read transaction open, as a slow page does, while the writer
	// writes more than WALLimit: the WAL cannot restart under it.
	conn, err := db.read.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rtx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rtx.QueryRow(`SELECT count(*) FROM machines`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 1<<20)
	for i := range 80 {
		if err := db.do(ctx, func(t *tx) error {
			_, err := t.exec(`INSERT INTO boot_events (at, mac, kind, detail) VALUES ('2026-01-01T00:00:00.000Z', ?, 'tftp', ?)`,
				string(testMAC(i)), string(blob))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	rtx.Rollback()
	conn.Close()
	wal := db.path + "-wal"
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Commits poke the checkpointer.
		if err := db.do(ctx, func(t *tx) error { _, err := t.exec(`DELETE FROM boot_events WHERE id = 1`); return err }); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(wal)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() <= WALLimit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL still %d MiB after its readers left", fi.Size()>>20)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
