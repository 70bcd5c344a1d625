package testvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// QMP is a client of QEMU's machine protocol on a unix socket: one command in
// flight at a time, asynchronous events delivered on a channel.
type QMP struct {
	conn    net.Conn
	mu      sync.Mutex // serialises Execute
	enc     *json.Encoder
	replies chan qmpMessage
	events  chan QMPEvent
	done    chan struct{}
	err     error // why the reader stopped; valid after done is closed
	id      int
}

// QMPEvent is an asynchronous QMP event such as RESET, STOP or GUEST_PANICKED.
type QMPEvent struct {
	// Name is the event name, e.g. "RESET".
	Name string
	// Data is the event's payload, if any.
	Data json.RawMessage
	// Time is when the client received it.
	Time time.Time
}

// QMPStatus is the answer to query-status.
type QMPStatus struct {
	// Status is QEMU's run state: "running", "paused", "prelaunch",
	// "internal-error", "guest-panicked", "shutdown", ...
	Status string `json:"status"`
	// Running is true while the guest CPUs run.
	Running bool `json:"running"`
}

// QMPError is an error reply from QEMU.
type QMPError struct {
	// Class is QEMU's error class, e.g. "GenericError".
	Class string `json:"class"`
	// Desc is the human-readable description.
	Desc string `json:"desc"`
}

// Error formats the class and description.
func (e *QMPError) Error() string { return "qmp: " + e.Class + ": " + e.Desc }

// qmpMessage is any message QEMU sends: the greeting, a reply or an event.
type qmpMessage struct {
	QMP       json.RawMessage `json:"QMP"`
	Return    json.RawMessage `json:"return"`
	Error     *QMPError       `json:"error"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	ID        *int            `json:"id"`
	Timestamp json.RawMessage `json:"timestamp"`
}

// DialQMP connects to a QMP socket, retrying until QEMU has created it or ctx
// ends, and negotiates capabilities.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var conn net.Conn
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			conn = c
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial qmp %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	q := &QMP{
		conn:    conn,
		enc:     json.NewEncoder(conn),
		replies: make(chan qmpMessage, 1),
		events:  make(chan QMPEvent, 256),
		done:    make(chan struct{}),
	}
	greeting := make(chan error, 1)
	go q.read(greeting)
	select {
	case err := <-greeting:
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("qmp greeting on %s: %w", path, err)
		}
	case <-ctx.Done():
		_ = conn.Close()
		return nil, fmt.Errorf("qmp greeting on %s: %w", path, ctx.Err())
	}
	if _, err := q.Execute(ctx, "qmp_capabilities", nil); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return q, nil
}

// read decodes messages until the connection closes; the first one must be
// the greeting.
func (q *QMP) read(greeting chan<- error) {
	dec := json.NewDecoder(q.conn)
	first := true
	for {
		var m qmpMessage
		if err := dec.Decode(&m); err != nil {
			if first {
				greeting <- err
			}
			q.err = err
			close(q.done)
			return
		}
		switch {
		case first:
			first = false
			if m.QMP == nil {
				greeting <- errors.New("no QMP greeting")
			} else {
				greeting <- nil
			}
		case m.Event != "":
			select {
			case q.events <- QMPEvent{Name: m.Event, Data: m.Data, Time: time.Now()}:
			default: // nobody listening: drop rather than stall replies
			}
		default:
			q.replies <- m
		}
	}
}

// Execute runs a command and returns its "return" value.
func (q *QMP) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.id++
	req := map[string]any{"execute": command, "id": q.id}
	if args != nil {
		req["arguments"] = args
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = q.conn.SetWriteDeadline(dl)
	}
	if err := q.enc.Encode(req); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	for {
		select {
		case m := <-q.replies:
			if m.ID == nil || *m.ID != q.id {
				continue // a reply to a command whose caller gave up
			}
			if m.Error != nil {
				return nil, fmt.Errorf("qmp %s: %w", command, m.Error)
			}
			return m.Return, nil
		case <-q.done:
			return nil, fmt.Errorf("qmp %s: connection closed: %v", command, q.err)
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp %s: %w", command, ctx.Err())
		}
	}
}

// Status runs query-status.
func (q *QMP) Status(ctx context.Context) (QMPStatus, error) {
	raw, err := q.Execute(ctx, "query-status", nil)
	if err != nil {
		return QMPStatus{}, err
	}
	var s QMPStatus
	if err := json.Unmarshal(raw, &s); err != nil {
		return QMPStatus{}, fmt.Errorf("qmp query-status: %w", err)
	}
	return s, nil
}

// Events delivers asynchronous events; events arriving while the channel is
// full are dropped.
func (q *QMP) Events() <-chan QMPEvent { return q.events }

// Done is closed when the connection is gone (QEMU exited or Close).
func (q *QMP) Done() <-chan struct{} { return q.done }

// Close closes the connection.
func (q *QMP) Close() error { return q.conn.Close() }
