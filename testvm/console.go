package testvm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// errConsoleClosed means QEMU closed the serial console: it is exiting.
var errConsoleClosed = errors.New("console closed")

// Line is one line of a serial console, stamped when it was read.
type Line struct {
	// Time is when the line's newline arrived.
	Time time.Time
	// Text is the line without its line ending and without terminal
	// escape sequences (systemd colours its status lines; firmware clears
	// the screen), so tests match what a person reads.
	Text string
}

// Console collects a VM's serial output line by line from QEMU's stdout (a
// pipe, no file polling) and copies it, timestamped, to a log file. WaitFor
// keeps a cursor so successive calls follow the boot in order.
type Console struct {
	mu      sync.Mutex
	lines   []Line
	cursor  int           // index of the first line WaitFor has not consumed
	changed chan struct{} // closed and replaced whenever a line arrives or the reader ends
	ended   bool
	start   time.Time
}

// newConsole starts reading r until EOF, logging to logPath.
func newConsole(r io.Reader, logPath string) (*Console, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("console log: %w", err)
	}
	c := &Console{changed: make(chan struct{}), start: time.Now()}
	go c.read(r, f)
	return c, nil
}

func (c *Console) read(r io.Reader, log *os.File) {
	defer log.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		s, err := br.ReadString('\n')
		if s != "" && (err == nil || err == io.EOF) {
			text := stripEscapes(strings.TrimRight(s, "\r\n"))
			now := time.Now()
			fmt.Fprintf(log, "%8.3f %s\n", now.Sub(c.start).Seconds(), text)
			c.mu.Lock()
			c.lines = append(c.lines, Line{Time: now, Text: text})
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
		if err != nil {
			c.mu.Lock()
			c.ended = true
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
			return
		}
	}
}

// len returns how many lines were read so far.
func (c *Console) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// waitOutput reports whether a line beyond the first from lines arrives
// within d (false too when ctx ends or the console closes).
func (c *Console) waitOutput(ctx context.Context, from int, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		n, ended, changed := len(c.lines), c.ended, c.changed
		c.mu.Unlock()
		if n > from {
			return true
		}
		if ended {
			return false
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Lines returns a copy of every line read so far.
func (c *Console) Lines() []Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Line(nil), c.lines...)
}

// Count returns how many lines so far contain substr.
func (c *Console) Count(substr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if strings.Contains(l.Text, substr) {
			n++
		}
	}
	return n
}

// Skip moves the cursor past every line read so far, so the next WaitFor
// only sees output that comes later (e.g. after a reset).
func (c *Console) Skip() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cursor = len(c.lines)
}

// Tail returns the last n lines as text, for error messages.
func (c *Console) Tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	from := max(0, len(c.lines)-n)
	var b strings.Builder
	for _, l := range c.lines[from:] {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// waitFor returns the first line at or after the cursor containing substr and
// moves the cursor past it. It fails when ctx ends, when fail yields an error
// (the VM died), or when the console ends without a match.
func (c *Console) waitFor(ctx context.Context, substr string, fail func() error) (Line, error) {
	for {
		c.mu.Lock()
		for i := c.cursor; i < len(c.lines); i++ {
			if strings.Contains(c.lines[i].Text, substr) {
				c.cursor = i + 1
				l := c.lines[i]
				c.mu.Unlock()
				return l, nil
			}
		}
		ended, changed := c.ended, c.changed
		c.mu.Unlock()
		if err := fail(); err != nil {
			return Line{}, err
		}
		if ended {
			return Line{}, fmt.Errorf("%w before %q", errConsoleClosed, substr)
		}
		select {
		case <-ctx.Done():
			return Line{}, fmt.Errorf("waiting for %q: %w", substr, context.Cause(ctx))
		case <-changed:
		case <-time.After(250 * time.Millisecond): // re-check fail()
		}
	}
}

// stripEscapes removes ANSI escape sequences: CSI (ESC [ ... final byte in
// @-~) and two-byte ESC sequences.
func stripEscapes(s string) string {
	if !strings.ContainsRune(s, 0x1b) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != 0x1b {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		i++ // ESC and the byte after it
	}
	return b.String()
}
