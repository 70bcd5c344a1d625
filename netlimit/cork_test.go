package netlimit

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Bulk corks the connection while its response is written and uncorks it
// after, through a Listener's connections: the whole body arrives, and the
// next response on the same connection is not held back.
func TestBulkCorks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "artifact")
	data := bytes.Repeat([]byte("undercloud"), 300_000) // 3 MB: several Deadlines chunks
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	corked := make(chan [2]int, 2) // TCP_CORK inside fn, and after Bulk
	mux := http.NewServeMux()
	mux.HandleFunc("GET /artifact", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		var in int
		Bulk(r, func() {
			in = cork(t, r)
			http.ServeContent(w, r, "", time.Time{}, f)
		})
		corked <- [2]int{in, cork(t, r)}
	})
	mux.HandleFunc("GET /small", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "small") })
	srv := &http.Server{Handler: Deadlines(mux, 0, 0), ConnContext: ConnContext}
	go srv.Serve(Limit(ln, 10, 10, nil))
	defer srv.Close()

	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	for _, p := range []string{"/artifact", "/small"} {
		resp, err := c.Get("http://" + ln.Addr().String() + p)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if p == "/artifact" && !bytes.Equal(body, data) {
			t.Fatalf("artifact: %d bytes, want %d", len(body), len(data))
		}
		if p == "/small" && string(body) != "small" {
			t.Fatalf("small: %q", body)
		}
	}
	if got := <-corked; got != [2]int{1, 0} {
		t.Errorf("TCP_CORK during and after Bulk: %v, want [1 0]", got)
	}
}

// cork reads TCP_CORK of r's connection.
func cork(t *testing.T, r *http.Request) int {
	t.Helper()
	tc := tcpConn(r.Context().Value(connKey{}))
	if tc == nil {
		t.Fatal("no TCP connection in the request's context")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	v := -1
	rc.Control(func(fd uintptr) { v, err = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK) })
	if err != nil {
		t.Fatal(err)
	}
	return v
}
