package power

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// qemuVM is a real QEMU process without guest hardware (-machine none),
// started paused (-S), with two QMP sockets: one for the driver under test,
// one from which the test watches QEMU's events (RESET, STOP, RESUME).
type qemuVM struct {
	cmd    *exec.Cmd
	qmp    string // the driver's socket
	events chan string
}

func startQEMU(t *testing.T) *qemuVM {
	t.Helper()
	bin := need(t, "qemu-system-x86_64", "qemu-system-x86")
	dir := t.TempDir()
	vm := &qemuVM{qmp: filepath.Join(dir, "driver.qmp"), events: make(chan string, 64)}
	watch := filepath.Join(dir, "watch.qmp")
	var out bytes.Buffer
	vm.cmd = exec.Command(bin, "-S", "-nodefaults", "-display", "none", "-machine", "none",
		"-qmp", "unix:"+vm.qmp+",server=on,wait=off",
		"-qmp", "unix:"+watch+",server=on,wait=off")
	vm.cmd.Stdout, vm.cmd.Stderr = &out, &out
	if err := vm.cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	t.Cleanup(func() {
		vm.cmd.Process.Kill()
		vm.cmd.Wait()
		if t.Failed() {
			t.Logf("qemu output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	var w *qmpConn
	for {
		var err error
		w, err = dialQMP(context.Background(), watch)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("qemu's QMP socket does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(w.close)
	go func() {
		defer close(vm.events)
		for {
			var m qmpMessage
			if err := w.read(&m); err != nil {
				return
			}
			if m.Event != "" {
				vm.events <- m.Event
			}
		}
	}()
	return vm
}

// seen returns the events QEMU sent since the last call: it waits for n,
// then a little more for any unexpected extra one.
func (vm *qemuVM) seen(n int) []string {
	var got []string
	wait := time.After(3 * time.Second)
	for len(got) < n {
		select {
		case e := <-vm.events:
			got = append(got, e)
		case <-wait:
			return got
		}
	}
	extra := time.After(100 * time.Millisecond)
	for {
		select {
		case e := <-vm.events:
			got = append(got, e)
		case <-extra:
			return got
		}
	}
}

func (vm *qemuVM) driver(t *testing.T, c Config) Driver {
	t.Helper()
	c.Driver, c.Address, c.Log = DriverQMP, vm.qmp, testLogger(t)
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	c.Backoff = 10 * time.Millisecond
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestQMPAgainstQEMU(t *testing.T) {
	vm := startQEMU(t)
	d := vm.driver(t, Config{})
	ctx := context.Background()
	if st, err := d.Status(ctx); err != nil || st != Off {
		t.Fatalf("prelaunch: got %s, %v; want off", st, err)
	}
	steps := []struct {
		name       string
		do         func(Driver, context.Context) error
		wantEvents []string
		want       State
	}{
		{"on from prelaunch", Driver.On, []string{"RESET", "RESUME"}, On},
		{"on when on does nothing", Driver.On, nil, On},
		{"cycle when on resets", Driver.Cycle, []string{"RESET"}, On},
		{"pxe once does nothing", Driver.PXEOnce, nil, On},
		{"off pauses", Driver.Off, []string{"STOP"}, Off},
		{"cycle when off resets and runs", Driver.Cycle, []string{"RESET", "RESUME"}, On},
		{"pxe reboot when on", pxeReboot, []string{"RESET"}, On},
		{"off again", Driver.Off, []string{"STOP"}, Off},
		{"pxe reboot when off", pxeReboot, []string{"RESET", "RESUME"}, On},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(d, ctx); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(st.wantEvents, vm.seen(len(st.wantEvents))); diff != "" {
				t.Errorf("qemu events (-want +got):\n%s", diff)
			}
			got, err := d.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got != st.want {
				t.Errorf("status: got %s, want %s", got, st.want)
			}
		})
	}
}

// TestQMPMonitorBusy: QEMU serves one client per QMP socket; while another
// holds it, a call gets no greeting and counts as no answer.
func TestQMPMonitorBusy(t *testing.T) {
	vm := startQEMU(t)
	holder, err := net.Dial("unix", vm.qmp)
	if err != nil {
		t.Fatal(err)
	}
	d := vm.driver(t, Config{Timeout: 300 * time.Millisecond, Attempts: 2})
	_, err = d.Status(context.Background())
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("monitor held: got %v, want ErrUnreachable", err)
	}
	holder.Close()
	// QEMU now serves the connections queued meanwhile, each closed by its
	// timed-out attempt, then the next call.
	if _, err := vm.driver(t, Config{Timeout: 2 * time.Second}).Status(context.Background()); err != nil {
		t.Fatalf("monitor released: %v", err)
	}
}

func TestQMPUnreachable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.qmp")
	d, err := New(Config{Driver: DriverQMP, Address: missing, Timeout: time.Second, Attempts: 2, Backoff: 10 * time.Millisecond, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = d.On(context.Background())
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("no socket: got %v, want ErrUnreachable", err)
	}
	want := "qmp " + missing + ": power on: no answer after 2 attempts (1s each): dial unix " + missing + ": connect: no such file or directory"
	if err.Error() != want {
		t.Errorf("got  %q\nwant %q", err, want)
	}

	// QEMU gone, its socket file left behind: connection refused.
	vm := startQEMU(t)
	vm.cmd.Process.Kill()
	vm.cmd.Wait()
	if _, err := vm.driver(t, Config{Attempts: 2}).Status(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("qemu gone: got %v, want ErrUnreachable", err)
	}
}

// TestQMPCommandError: QEMU's error objects become final errors with
// QEMU's class and description.
func TestQMPCommandError(t *testing.T) {
	vm := startQEMU(t)
	c, err := dialQMP(context.Background(), vm.qmp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	err = c.execute("no-such-command", nil)
	if err == nil || kindOf(err) != permanent || !strings.Contains(err.Error(), "qmp no-such-command: CommandNotFound: ") {
		t.Fatalf("got %v (kind %d), want a permanent CommandNotFound", err, kindOf(err))
	}
}

// TestQMPNotQMP: a unix socket that speaks something else is a final error.
func TestQMPNotQMP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "http.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	d, err := New(Config{Driver: DriverQMP, Address: path, Attempts: 3, Backoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Status(context.Background())
	if err == nil || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "not QMP") {
		t.Fatalf("got %v, want a final not-QMP error", err)
	}
}

func TestQMPState(t *testing.T) {
	tests := map[string]State{
		"running": On, "suspended": On,
		"paused": Off, "prelaunch": Off, "shutdown": Off, "internal-error": Off, "guest-panicked": Off, "io-error": Off,
		"": Unknown, "bogus": Unknown,
	}
	for status, want := range tests {
		got, err := qmpState(status)
		if got != want || (err != nil) != (want == Unknown) {
			t.Errorf("%q: got %s, %v; want %s", status, got, err, want)
		}
	}
}
