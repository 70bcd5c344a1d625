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
	r := testRange(10, 19)
	release := hold(t, db)

	errBoom := errors.New("boom")
	results := make(chan error, 3)
	go func() {
		_, err := db.Allocate(ctx, LeaseRequest{MAC: testMAC(1)}, r)
		results <- err
	}()
	waitQueued(t, db, 1)
	go func() {
		// Allocates (moving the cursor) and records, then fails.
		results <- db.do(ctx, func(t *tx) error {
			n, mine, at, err := t.pick(LeaseRequest{MAC: testMAC(2)}, poolKey{10<<24 + 10, 10<<24 + 19})
			if err != nil {
				return err
			}
			if _, err := t.offer(LeaseRequest{MAC: testMAC(2)}, n, mine, at); err != nil {
				return err
			}
			if _, err := t.storeEvents([]Event{{MAC: testMAC(2), Kind: event.DHCPOffer, At: time.Now()}}, false); err != nil {
				return err
			}
			return errBoom
		})
	}()
	waitQueued(t, db, 2)
	go func() {
		_, err := db.Allocate(ctx, LeaseRequest{MAC: testMAC(3)}, r)
		results <- err
	}()
	waitQueued(t, db, 3)
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
	for mac, want := range map[int]int{1: 10, 3: 11} {
		l, err := db.LeaseByMAC(ctx, testMAC(mac))
		if err != nil || l.IP != testIP(want) {
			t.Errorf("client %d: %v %v, want %s (the failed write's address reused)", mac, l.IP, err, testIP(want))
		}
	}
	if _, err := db.LeaseByMAC(ctx, testMAC(2)); !errors.Is(err, ErrNotFound) {
		t.Errorf("the failed write's lease exists: %v", err)
	}
	if _, err := db.Machine(ctx, testMAC(2)); !errors.Is(err, ErrNotFound) {
		t.Errorf("the failed write's event created a machine: %v", err)
	}
	if evs, err := db.Events(ctx, testMAC(2), 0); err != nil || len(evs) != 0 {
		t.Errorf("the failed write's event exists: %v %v", evs, err)
	}
	l, err := db.Allocate(ctx, LeaseRequest{MAC: testMAC(4)}, r)
	if err != nil || l.IP != testIP(12) {
		t.Errorf("next allocation: %v %v, want %s", l.IP, err, testIP(12))
	}
}

// A write whose caller gave up before it started is not run.
func TestCancelledWriteNotRun(t *testing.T) {
	db := openTest(t, newClock())
	release := hold(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := db.Bind(ctx, LeaseRequest{MAC: testMAC(1), IP: testIP(1)})
		errc <- err
	}()
	waitQueued(t, db, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Bind: %v, want context.Canceled", err)
	}
	release()
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l, err := db.LeaseByMAC(context.Background(), testMAC(1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancelled bind stored: %+v %v", l, err)
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
