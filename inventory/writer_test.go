package inventory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
)

// hold blocks the writer until the returned release is called, so the
// writes submitted meanwhile are committed together in the next batch.
func hold(t *testing.T, db *DB) (release func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.do(context.Background(), func(*tx) error {
			close(entered)
			<-gate
			return nil
		})
	}()
	<-entered
	return func() {
		close(gate)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// waitQueued waits until n writes wait for the writer.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(db.w.ops) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", len(db.w.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A write that fails is undone alone: the others of its batch commit.
func TestBatchIsolatesFailures(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newClock())
	release := hold(t, db)

	errBoom := errors.New("boom")
	store := func(mac int, fail bool) func(*tx) error {
		return func(t *tx) error {
			if _, err := t.storeEvents([]Event{{MAC: testMAC(mac), Kind: event.DHCPDiscover, At: time.Now()}}, false); err != nil {
				return err
			}
			if fail {
				return errBoom
			}
			return nil
		}
	}
	results := make(chan error, 3)
	for i, mac := range []int{1, 2, 3} {
		go func() { results <- db.do(ctx, store(mac, mac == 2)) }()
		waitQueued(t, db, i+1)
	}
	release()

	var boom, ok int
	for range 3 {
		switch err := <-results; {
		case errors.Is(err, errBoom):
			boom++
		case err == nil:
			ok++
		default:
			t.Errorf("unexpected: %v", err)
		}
	}
	if boom != 1 || ok != 2 {
		t.Fatalf("%d failed and %d succeeded, want 1 and 2", boom, ok)
	}
	for _, mac := range []int{1, 3} {
		if evs, err := db.Events(ctx, testMAC(mac), 0); err != nil || len(evs) != 1 {
			t.Errorf("client %d: events %v %v, want its one", mac, evs, err)
		}
	}
	if _, err := db.Machine(ctx, testMAC(2)); !errors.Is(err, ErrNotFound) {
		t.Errorf("the failed write's event created a machine: %v", err)
	}
	if evs, err := db.Events(ctx, testMAC(2), 0); err != nil || len(evs) != 0 {
		t.Errorf("the failed write's event exists: %v %v", evs, err)
	}
}

// A write whose caller gave up before it started is not run.
func TestCancelledWriteNotRun(t *testing.T) {
	db := openTest(t, newClock())
	release := hold(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	ran := false
	go func() { errc <- db.do(ctx, func(*tx) error { ran = true; return nil }) }()
	waitQueued(t, db, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("do: %v, want context.Canceled", err)
	}
	release()
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ran {
		t.Error("the cancelled write ran")
	}
}

// Buffered events that share a batch with a failing write survive the
// batch's replay: they are taken from the buffer once and stored once.
func TestReplayKeepsRecordedEvents(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newClock())
	release := hold(t, db)
	if err := db.Record(ctx, Event{MAC: testMAC(7), Kind: event.DHCPDiscover}); err != nil {
		t.Fatal(err)
	}
	waitQueued(t, db, 1)
	errBoom := errors.New("boom")
	failed := make(chan error, 1)
	go func() { failed <- db.do(ctx, func(*tx) error { return errBoom }) }()
	waitQueued(t, db, 2)
	release()
	if err := <-failed; !errors.Is(err, errBoom) {
		t.Fatalf("failing write: %v", err)
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := db.Events(ctx, testMAC(7), 0)
	if err != nil || len(evs) != 1 || evs[0].Kind != event.DHCPDiscover {
		t.Fatalf("events after the replay: %v %v, want the one discover", evs, err)
	}
}
