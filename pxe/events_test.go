package pxe

import (
	"context"
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
)

// blockingRecorder holds every Record until released, like a stuck database.
type blockingRecorder struct {
	release chan struct{}
	got     chan Event
}

func (b *blockingRecorder) Record(e Event) {
	<-b.release
	b.got <- e
}

// Queue never blocks its caller: with the consumer stuck, Record returns at
// once and drops what does not fit; what fit is delivered, in order, also
// after the context ends.
func TestQueue(t *testing.T) {
	next := &blockingRecorder{release: make(chan struct{}), got: make(chan Event, 100)}
	q := &Queue{Next: next, Size: 4}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()

	// The first event is taken by Run, which then sticks in Next.Record.
	q.Record(Event{Kind: event.TFTP, Bytes: 0})
	deadline := time.Now().Add(5 * time.Second)
	for len(q.ch) != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for i := 1; i < 10; i++ {
		q.Record(Event{Kind: event.TFTP, Bytes: int64(i)})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Record blocked for %v", d)
	}
	// Four fit in the buffer; the other five are dropped.
	if got := q.Dropped(); got != 5 {
		t.Fatalf("Dropped() = %d, want 5", got)
	}
	cancel()
	close(next.release)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	for i := range 5 {
		select {
		case e := <-next.got:
			if e.Bytes != int64(i) {
				t.Errorf("event %d has Bytes %d: out of order", i, e.Bytes)
			}
		default:
			t.Fatalf("only %d events delivered, want 5", i)
		}
	}
}
