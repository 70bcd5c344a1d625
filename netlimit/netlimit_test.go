package netlimit

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestListenerCaps: connections beyond the per-address and the total cap
// are closed at once and counted; closing a held one frees its slot.
func TestListenerCaps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := Limit(ln, 3, 2, nil)
	defer lim.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := lim.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closed reports whether the server closed c at once.
	closed := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return false
		}
		return true
	}
	a1, a2, a3 := dial("127.0.0.2"), dial("127.0.0.2"), dial("127.0.0.2")
	if closed(a1) || closed(a2) || !closed(a3) {
		t.Fatal("want the first two connections of 127.0.0.2 held and the third closed")
	}
	b1, b2 := dial("127.0.0.3"), dial("127.0.0.3")
	if closed(b1) || !closed(b2) {
		t.Fatal("want 127.0.0.3's first connection held and its second closed: the total cap is 3")
	}
	if got := lim.Refused(); got != 2 {
		t.Errorf("Refused() = %d, want 2", got)
	}
	if got := lim.Open(); got != 3 {
		t.Errorf("Open() = %d, want 3", got)
	}
	first := <-accepted
	first.Close()
	first.Close() // a second Close must not free a second slot
	c := dial("127.0.0.3")
	if closed(c) {
		t.Error("a freed slot was not given to the next connection")
	}
	if got := lim.Open(); got != 3 {
		t.Errorf("Open() = %d after one close and one accept, want 3", got)
	}
}

// TestDeadlinesSlowDownload: a response far longer than the write idle
// timeout goes through to a client that reads slowly but steadily, by
// sendfile (ServeContent of a file); a client that stops reading is cut off
// about one idle timeout later.
func TestDeadlinesSlowDownload(t *testing.T) {
	const size = 32 << 20
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), size), 0o644); err != nil {
		t.Fatal(err)
	}
	served := make(chan time.Time, 4)
	h := Deadlines(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "", time.Time{}, f)
		served <- time.Now()
	}), time.Second, 400*time.Millisecond)
	srv := httptest.NewServer(h)
	defer srv.Close()

	t.Run("slow but steady", func(t *testing.T) {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		start := time.Now()
		var n int64
		buf := make([]byte, 1<<20)
		for {
			k, err := io.ReadFull(resp.Body, buf)
			n += int64(k)
			if err != nil {
				break
			}
			time.Sleep(40 * time.Millisecond) // 25 MiB/s
		}
		if n != size {
			t.Fatalf("got %d bytes in %s, want %d", n, time.Since(start), size)
		}
		<-served
		t.Logf("%d MiB in %s with a 400 ms write idle timeout", n>>20, time.Since(start).Round(time.Millisecond))
	})
	t.Run("stops reading", func(t *testing.T) {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		start := time.Now()
		select {
		case at := <-served:
			t.Logf("handler returned %s after the client stopped reading", at.Sub(start).Round(time.Millisecond))
		case <-time.After(5 * time.Second):
			t.Fatal("the response to a client that stopped reading is still being written after 5 s")
		}
	})
}

// TestDeadlinesSlowBody: a request body that does not arrive within the
// read timeout ends the request.
func TestDeadlinesSlowBody(t *testing.T) {
	got := make(chan error, 1)
	h := Deadlines(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
	}), 300*time.Millisecond, time.Second)
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a part")
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("the body read succeeded")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the handler still waits for the body after 3 s")
	}
}

// readFromRecorder is a ResponseWriter that records what ReadFrom is given.
type readFromRecorder struct {
	*httptest.ResponseRecorder
	srcs []io.Reader
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.srcs = append(r.srcs, src)
	return io.Copy(r.ResponseRecorder, src)
}

// TestDeadlinesKeepSendfile: the response goes on to the connection as
// 1 MiB *io.LimitedReader pieces of the *os.File itself, which
// net.TCPConn.ReadFrom sends with sendfile.
func TestDeadlinesKeepSendfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, bytes.Repeat([]byte("y"), 3<<20+5), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
	w := &writer{ResponseWriter: rec, rc: http.NewResponseController(rec), idle: time.Second}
	lr := &io.LimitedReader{R: f, N: 3<<20 + 2}
	n, err := w.ReadFrom(lr)
	if err != nil || n != 3<<20+2 || lr.N != 0 {
		t.Fatalf("ReadFrom = %d, %v; remaining %d", n, err, lr.N)
	}
	if len(rec.srcs) != 4 {
		t.Fatalf("%d pieces, want 4", len(rec.srcs))
	}
	for _, src := range rec.srcs {
		l, ok := src.(*io.LimitedReader)
		if !ok {
			t.Fatalf("piece is a %T, want *io.LimitedReader", src)
		}
		if _, ok := l.R.(*os.File); !ok {
			t.Fatalf("piece reads a %T, want the *os.File", l.R)
		}
	}
	if rec.Body.Len() != 3<<20+2 {
		t.Errorf("wrote %d bytes", rec.Body.Len())
	}
}
