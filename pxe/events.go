package pxe

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/undercloud/undercloud/event"
)

// Event is one recorded boot step. Fields that are not known for a step are
// left zero: a TFTP transfer has no version, an artifact no boot id.
type Event struct {
	Time    time.Time
	Kind    event.Kind
	MAC     string     // canonical lower-case colon form, empty when unknown
	IP      netip.Addr // the client's address
	BootID  string     // groups the events of one boot; minted with the script
	Site    string
	Machine string
	Version string // config version (commit)
	File    string // TFTP/firmware file name or artifact digest
	Bytes   int64  // bytes sent (transfers, artifacts, configs)
	Detail  string // e.g. the script action, a hostname
	Error   string // why a step failed or was refused; empty on success
}

// Recorder receives boot events. Record is called on the request path, so it
// must not block: an implementation that writes to a database queues the
// event (Queue does that for any Recorder).
type Recorder interface {
	Record(Event)
}

// Leases maps a client address to the MAC that holds its DHCP lease, so that
// a TFTP transfer, which carries no MAC, can name the machine. Optional.
type Leases interface {
	MACByIP(ctx context.Context, ip netip.Addr) (mac string, ok bool)
}

// Metrics is told about every machine-facing request and TFTP transfer, so
// that the web package can export counters without pxe importing a metrics
// library. Optional; calls must be cheap and must not block.
type Metrics interface {
	// HTTPRequest counts a request by endpoint (boot.ipxe, ipxe, images,
	// firmware, ignition, booted, heartbeat) and response status.
	HTTPRequest(endpoint string, status int)
	// TFTPTransfer counts a transfer (ok false: refused or failed) and its bytes.
	TFTPTransfer(file string, bytes int64, ok bool)
}

// DefaultQueueSize is the number of events a Queue buffers when Size is 0.
const DefaultQueueSize = 4096

// Queue is a Recorder that never blocks: Record buffers the event and Run
// hands it to Next from its own goroutine. When the buffer is full the event
// is dropped and counted, because a slow inventory must never stall a boot.
// The zero value (plus Next) is ready to use.
type Queue struct {
	Next Recorder     // receives every event that was not dropped
	Size int          // buffer size; 0 means DefaultQueueSize
	Log  *slog.Logger // nil means discard

	once    sync.Once
	ch      chan Event
	dropped atomic.Uint64
}

func (q *Queue) init() {
	q.once.Do(func() {
		n := q.Size
		if n <= 0 {
			n = DefaultQueueSize
		}
		q.ch = make(chan Event, n)
	})
}

// Record implements Recorder.
func (q *Queue) Record(e Event) {
	q.init()
	select {
	case q.ch <- e:
	default:
		if q.dropped.Add(1) == 1 {
			logger(q.Log).Warn("boot event queue full: dropping events", "kind", string(e.Kind), "mac", e.MAC)
		}
	}
}

// Dropped returns how many events were dropped because the buffer was full.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// Run forwards events to Next until ctx ends, then forwards what is still
// buffered and returns nil.
func (q *Queue) Run(ctx context.Context) error {
	q.init()
	for {
		select {
		case e := <-q.ch:
			q.Next.Record(e)
		case <-ctx.Done():
			for {
				select {
				case e := <-q.ch:
					q.Next.Record(e)
				default:
					return nil
				}
			}
		}
	}
}

// logger returns l, or a logger that discards when l is nil: what a nil Log
// field means throughout the package.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
