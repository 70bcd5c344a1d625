package netlimit

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pair returns the server side of a TCP connection accepted through a
// Listener (what net/http gets) and the client side.
func pair(t *testing.T) (*conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Limit(ln, 0, 0, nil)
	t.Cleanup(func() { l.Close() })
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server.(*conn), client
}

// A file goes out by sendfile from its current offset, as far as an
// *io.LimitedReader allows (counting it down) or to its end, and the file's
// offset moves past what was sent: what net.TCPConn.ReadFrom does.
func TestSendFile(t *testing.T) {
	const size = 5<<20 + 3
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "artifact")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(100, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	server, client := pair(t)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()

	lr := &io.LimitedReader{R: f, N: 3 << 20}
	n, handled, err := sendFile(server.Conn.(*net.TCPConn), lr)
	if err != nil || !handled || n != 3<<20 || lr.N != 0 {
		t.Fatalf("sendFile(limited) = %d, %t, %v; %d left, want %d sent by sendfile", n, handled, err, lr.N, 3<<20)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 100+3<<20 {
		t.Fatalf("file offset %d after sending, want %d", off, 100+3<<20)
	}
	rest, err := server.ReadFrom(f) // to the end, through the conn as net/http calls it
	if want := int64(size - 100 - 3<<20); err != nil || rest != want {
		t.Fatalf("ReadFrom(file) = %d, %v, want %d", rest, err, want)
	}
	server.Close()
	if b := <-got; !bytes.Equal(b, data[100:]) {
		t.Fatalf("client got %d bytes, not the file from offset 100 (%d bytes)", len(b), size-100)
	}
}

// What is not a file is not for sendfile: the caller copies it.
func TestSendFileNotAFile(t *testing.T) {
	server, _ := pair(t)
	for _, r := range []io.Reader{strings.NewReader("x"), &io.LimitedReader{R: strings.NewReader("x"), N: 1}} {
		if _, handled, _ := sendFile(server.Conn.(*net.TCPConn), r); handled {
			t.Errorf("sendFile(%T) handled it", r)
		}
	}
}

// A client that stops reading leaves the send waiting for the socket,
// not spinning: the write deadline ends it.
func TestSendFileDeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	server, _ := pair(t) // the client never reads
	server.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	start := time.Now()
	n, handled, err := sendFile(server.Conn.(*net.TCPConn), f)
	if !handled || !errors.Is(err, os.ErrDeadlineExceeded) || n >= 64<<20 {
		t.Fatalf("sendFile to a client that does not read = %d, %t, %v; want a deadline error", n, handled, err)
	}
	t.Logf("%d bytes in the socket buffers, deadline error after %s", n, time.Since(start).Round(time.Millisecond))
}
