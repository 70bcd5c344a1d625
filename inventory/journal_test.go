package inventory

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
)

// journalEnv makes the test binary a journal child: the value is the
// database's path.
const journalEnv = "UNDERCLOUD_INVENTORY_JOURNAL_CHILD"

const journalEvents = 50

// TestRecordDurableAcrossKill: a child holds the writer inside a
// transaction, so nothing it records can be stored, answers
// journalEvents booted reports with RecordDurable, says so, and is killed.
// Every report it answered for is stored when the inventory is opened
// again, once, and the journal is empty.
func TestRecordDurableAcrossKill(t *testing.T) {
	if path := os.Getenv(journalEnv); path != "" {
		journalChild(path) // does not return
	}
	path := filepath.Join(t.TempDir(), "inventory.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range journalEvents {
		declare(t, db, testMAC(i), fmt.Sprintf("w%d", i))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	answered := 0
	runKilled(t, "TestRecordDurableAcrossKill", journalEnv+"="+path, func(line string) childAction {
		switch {
		case line == "answered all":
			return childDone
		case strings.HasPrefix(line, "answered "):
			answered++
		}
		return childGoOn
	})
	if answered != journalEvents {
		t.Fatalf("child answered %d reports, want %d", answered, journalEvents)
	}

	for round := range 2 { // the second open finds nothing left to replay
		db, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		stored, bad := db.JournalReplayed()
		want := journalEvents
		if round > 0 {
			want = 0
		}
		if stored != want || bad != 0 {
			t.Errorf("open %d: replayed %d (unreadable %d), want %d", round, stored, bad, want)
		}
		for i := range journalEvents {
			evs, err := db.Events(context.Background(), testMAC(i), 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || evs[0].Kind != event.Booted || evs[0].BootID != fmt.Sprintf("boot-%d", i) || evs[0].Version != "v1" {
				t.Fatalf("open %d: events of %s: %+v, want its one booted report", round, testMAC(i), evs)
			}
			m, err := db.Machine(context.Background(), testMAC(i))
			if err != nil || m.State != StateProvisioned || m.CurrentVersion != "v1" {
				t.Errorf("open %d: machine %s is %s at %q (%v), want provisioned at v1", round, testMAC(i), m.State, m.CurrentVersion, err)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(journalPath(path)); !os.IsNotExist(err) {
		t.Errorf("journal left after a clean close: %v", err)
	}
}

// journalChild blocks the writer, answers journalEvents booted reports,
// prints "answered i" after each RecordDurable returns, then waits to be
// killed.
func journalChild(path string) {
	db, err := Open(context.Background(), path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	inTx := make(chan struct{})
	go db.do(context.Background(), func(*tx) error {
		close(inTx)
		select {} // the writer never commits again
	})
	<-inTx
	for i := range journalEvents {
		err := db.RecordDurable(context.Background(), Event{MAC: testMAC(i), Site: "lab", Kind: event.Booted,
			BootID: fmt.Sprintf("boot-%d", i), Version: "v1", Detail: `{"hostname":"h"}`})
		if err != nil {
			fmt.Fprintln(os.Stderr, "record:", err)
			os.Exit(2)
		}
		fmt.Printf("answered %d\n", i) // one write(2)
	}
	fmt.Println("answered all")
	time.Sleep(time.Hour) // killed here; never Close
}

// The journal of a process that died between a commit and emptying the
// file holds events already stored: they are not stored twice. A line cut
// by a power loss is counted, not stored, and does not stop the others.
func TestJournalReplaySkipsStored(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "inventory.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	declare(t, db, testMAC(1), "w1")
	declare(t, db, testMAC(2), "w2")
	at := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	ev1 := Event{At: at, MAC: testMAC(1), Site: "lab", Kind: event.Booted, BootID: "b1", Version: "v1"}
	ev2 := Event{At: at.Add(time.Second), MAC: testMAC(2), Site: "lab", Kind: event.Booted, BootID: "b2", Version: "v1"}
	if err := db.RecordDurable(ctx, ev1); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// What a dead process may leave: ev1 (stored), ev2 (not), a torn line.
	leaveJournal(t, journalPath(path), `{"At":"2026-12-07T02:00:02Z","MAC":"52:54:00:00:00:03","Kind":"boo`, ev1, ev2)

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if stored, bad := db.JournalReplayed(); stored != 1 || bad != 1 {
		t.Errorf("replayed %d, unreadable %d; want 1 and 1", stored, bad)
	}
	for _, ev := range []Event{ev1, ev2} {
		evs, err := db.Events(ctx, ev.MAC, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].BootID != ev.BootID || !evs[0].At.Equal(ev.At) {
			t.Errorf("events of %s: %+v, want its booted report once", ev.MAC, evs)
		}
	}
	if fi, err := os.Stat(journalPath(path)); err != nil || fi.Size() != 0 {
		t.Errorf("journal after replay: %v, %v; want it empty", fi, err)
	}
}

// Once the writer has stored every journaled event, the journal is empty
// again: it does not grow with the server's uptime.
func TestJournalEmptiedOnceStored(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, nil)
	declare(t, db, testMAC(1), "w1")
	// The writer waits inside a transaction until the journal is checked,
	// so nothing is stored (nor the journal emptied) before.
	inTx, release := make(chan struct{}), make(chan struct{})
	go db.do(ctx, func(*tx) error {
		close(inTx)
		<-release
		return nil
	})
	<-inTx
	for i := range 5 {
		if err := db.RecordDurable(ctx, Event{MAC: testMAC(1), Site: "lab", Kind: event.Booted, BootID: fmt.Sprint("b", i)}); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(db.jour.f.Name())
	if err != nil || fi.Size() == 0 {
		t.Fatalf("journal before the writer stored: %v, %v; want the five lines", fi, err)
	}
	close(release)
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(db.jour.f.Name()); err != nil || fi.Size() != 0 {
		t.Errorf("journal after Flush: %v, %v; want it empty", fi, err)
	}
	if evs, _ := db.Events(ctx, testMAC(1), 10); len(evs) != 5 {
		t.Errorf("%d events stored, want 5 (durable reports are never folded)", len(evs))
	}
}

// The lease journal of a dead process is stored in order at the next Open,
// so the last change of an address wins. A torn line and a change the
// database refuses are counted as unreadable, and the others still go in.
func TestLeaseJournalReplay(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "inventory.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	bound := Lease{IP: testIP(1), MAC: testMAC(1), Site: "lab", State: LeaseBound, Expires: at.Add(time.Hour), Updated: at}
	released := bound
	released.State, released.Expires, released.Updated = LeaseReleased, at.Add(time.Minute), at.Add(time.Minute)
	moved := Lease{IP: testIP(2), MAC: testMAC(1), Site: "lab", State: LeaseBound, Expires: at.Add(2 * time.Hour), Updated: at.Add(2 * time.Minute)}
	refused := Lease{IP: testIP(3), MAC: testMAC(3), State: "bogus", Expires: at, Updated: at}
	leaveJournal(t, leaseJournalPath(path), `{"IP":"10.0.0.9","MAC":"52:54:00:00:00:09","Sta`, bound, released, refused, moved)

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if stored, bad := db.JournalReplayed(); stored != 3 || bad != 2 {
		t.Errorf("replayed %d, unreadable %d; want 3 and 2", stored, bad)
	}
	ls, err := db.Leases(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0] != moved {
		t.Errorf("leases after replay: %+v, want only the last change, %+v", ls, moved)
	}
	var n int
	if err := db.read.QueryRow(`SELECT count(*) FROM leases WHERE mac = ? AND ip_num = ? AND state = 'bound'`, string(moved.MAC), 10<<24+2).Scan(&n); err != nil || n != 1 {
		t.Errorf("stored rows of the moved lease: %d (%v), want 1", n, err)
	}
	if fi, err := os.Stat(leaseJournalPath(path)); err != nil || fi.Size() != 0 {
		t.Errorf("lease journal after replay: %v, %v; want it empty", fi, err)
	}
}

// leaveJournal writes what a process that died may leave in the journal at
// path: the records, then a line cut short (torn).
func leaveJournal[T any](t *testing.T, path, torn string, recs ...T) {
	t.Helper()
	j, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.f.Close()
	for _, r := range recs {
		if err := j.append(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.f.WriteString(torn); err != nil {
		t.Fatal(err)
	}
}
