package power

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// qmp drives a lab QEMU virtual machine through its QMP monitor, as the lab's
// stand-in for a BMC. The VM is "off" whenever it is not running: paused by
// Off, still in prelaunch (-S), shut down, or stopped by an internal error.
type qmp struct {
	caller
	path string
}

func newQMP(c Config) (*qmp, error) {
	if !filepath.IsAbs(c.Address) {
		return nil, fmt.Errorf("bmc qmp %q: want the absolute path of a QMP unix socket", c.Address)
	}
	return &qmp{caller: c.caller(c.Address), path: c.Address}, nil
}

// qmpState maps QEMU's run state (QAPI RunState, the "status" of
// query-status) to a power state. A suspended guest (ACPI S3) is powered; every
// stopped state is off, so that On recovers a VM that stopped on a guest
// panic or an internal error. Unknown states are an error rather than a guess.
func qmpState(status string) (State, error) {
	switch status {
	case "running", "suspended":
		return On, nil
	case "paused", "prelaunch", "shutdown", "internal-error", "io-error", "guest-panicked",
		"watchdog", "debug", "inmigrate", "postmigrate", "finish-migrate", "restore-vm", "save-vm", "colo":
		return Off, nil
	}
	return Unknown, fmt.Errorf("unknown QEMU run state %q", status)
}

// session runs f on a fresh QMP connection: one per attempt, because QEMU
// serves one client per QMP socket and queues the others.
func (d *qmp) session(ctx context.Context, op string, f func(*qmpConn) error) error {
	return d.call(ctx, op, func(ctx context.Context) error {
		c, err := dialQMP(ctx, d.path)
		if err != nil {
			return err
		}
		defer c.close()
		return f(c)
	})
}

func (d *qmp) status(c *qmpConn) (State, error) {
	var r struct {
		Status string `json:"status"`
	}
	if err := c.execute("query-status", &r); err != nil {
		return Unknown, err
	}
	return qmpState(r.Status)
}

// Status implements Driver.
func (d *qmp) Status(ctx context.Context) (State, error) {
	var st State
	err := d.session(ctx, "query-status", func(c *qmpConn) error {
		var err error
		st, err = d.status(c)
		return err
	})
	if err != nil {
		return Unknown, err
	}
	d.log.Debug("power status", "state", st)
	return st, nil
}

// On implements Driver: system_reset then cont, so that the VM boots afresh
// like a machine powered on, whichever way it stopped (a shut-down or
// crashed VM refuses a bare cont). A running VM is left alone.
func (d *qmp) On(ctx context.Context) error {
	return d.session(ctx, "power on", func(c *qmpConn) error {
		st, err := d.status(c)
		if err != nil || st == On {
			return err
		}
		return d.restart(c)
	})
}

// Off implements Driver with stop: a paused VM is off in the lab. quit would
// end the QEMU process, and nothing could turn the machine on again.
func (d *qmp) Off(ctx context.Context) error {
	return d.session(ctx, "power off", func(c *qmpConn) error {
		if err := c.execute("stop", nil); err != nil {
			return err
		}
		d.log.Info("vm stopped", "op", "stop")
		return nil
	})
}

// Cycle implements Driver: system_reset (a full reboot, PXE included), then
// cont for a VM that was not running.
func (d *qmp) Cycle(ctx context.Context) error {
	return d.session(ctx, "power cycle", d.restart)
}

func (d *qmp) restart(c *qmpConn) error {
	if err := c.execute("system_reset", nil); err != nil {
		return err
	}
	// cont on a running VM succeeds and does nothing.
	if err := c.execute("cont", nil); err != nil {
		return err
	}
	d.log.Info("vm reset and running", "op", "system_reset")
	return nil
}

// PXEOnce implements Driver and does nothing: the lab VM's NIC has
// bootindex 1, so every boot is a network boot, and the server's iPXE script
// decides between installing and booting the local disk. QEMU has no QMP
// command for a one-time boot device.
func (d *qmp) PXEOnce(context.Context) error { return nil }

// qmpConn is one QMP session on a unix socket (QEMU's docs/interop/qmp-spec).
type qmpConn struct {
	conn net.Conn
	dec  *json.Decoder
	enc  *json.Encoder
	id   int
	stop func() bool
}

// qmpMessage is anything QEMU sends: the greeting, a command's return or
// error, or an asynchronous event.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	ID    json.RawMessage `json:"id"`
}

// dialQMP connects, reads the greeting and leaves capabilities negotiation
// mode. The connection honours ctx: its deadline, and its cancellation,
// which unblocks any read.
func dialQMP(ctx context.Context, path string) (*qmpConn, error) {
	var dl net.Dialer
	conn, err := dl.DialContext(ctx, "unix", path)
	if err != nil {
		// ENOENT: QEMU has not created the socket (yet); ECONNREFUSED: it
		// is gone; EAGAIN: the listen backlog is full while another client
		// holds the monitor. All may pass, as a BMC may come back.
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EAGAIN) || ctx.Err() != nil {
			return nil, classed(noAnswer, err)
		}
		return nil, err
	}
	c := &qmpConn{conn: conn, dec: json.NewDecoder(conn), enc: json.NewEncoder(conn)}
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	c.stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	var greeting qmpMessage
	if err := c.read(&greeting); err != nil {
		c.close()
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	if greeting.QMP == nil {
		c.close()
		return nil, fmt.Errorf("qmp greeting: not a QMP socket")
	}
	if err := c.execute("qmp_capabilities", nil); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *qmpConn) close() {
	c.stop()
	c.conn.Close()
}

// read decodes the next message; a timeout or a closed connection counts as
// no answer, anything but JSON as a wrong peer.
func (c *qmpConn) read(m *qmpMessage) error {
	err := c.dec.Decode(m)
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se), errors.As(err, &te):
		return fmt.Errorf("not QMP: %w", err)
	}
	return classed(noAnswer, err)
}

// execute runs a command and decodes its return value into out (unless nil),
// skipping the events that arrive meanwhile: QEMU may send a command's
// events before or after its return.
func (c *qmpConn) execute(command string, out any) error {
	c.id++
	id := strconv.Itoa(c.id)
	req := struct {
		Execute string `json:"execute"`
		ID      string `json:"id"`
	}{command, id}
	if err := c.enc.Encode(req); err != nil {
		return classed(noAnswer, fmt.Errorf("qmp %s: %w", command, err))
	}
	for {
		var m qmpMessage
		if err := c.read(&m); err != nil {
			return fmt.Errorf("qmp %s: %w", command, err)
		}
		if m.Event != "" || string(m.ID) != strconv.Quote(id) {
			continue
		}
		if m.Error != nil {
			return fmt.Errorf("qmp %s: %s: %s", command, m.Error.Class, m.Error.Desc)
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(m.Return, out); err != nil {
			return fmt.Errorf("qmp %s: return: %w", command, err)
		}
		return nil
	}
}
