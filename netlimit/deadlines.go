package netlimit

import (
	"io"
	"net/http"
	"time"
)

// chunk is the most one deadline covers: a response is written in pieces of
// at most this size, each with a fresh deadline.
const chunk = 1 << 20

// Deadlines bounds the time of each request handled by h without bounding
// its length: a request's body must arrive within read of the handler
// starting, and every piece of the response (at most 1 MiB, see chunk) must
// be taken by the client within writeIdle. A gigabyte artifact on a slow
// link keeps going as long as it moves; a client that stops reading loses
// its connection after writeIdle. Zero durations leave that side unbounded.
//
// http.Server's own ReadTimeout and WriteTimeout cannot do this: both are
// deadlines on the whole request, so a WriteTimeout cuts a long download and
// a ReadTimeout cancels the request's context in the middle of a long
// response (an event stream, an artifact).
func Deadlines(h http.Handler, read, writeIdle time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if read > 0 && r.Body != nil && r.Body != http.NoBody {
			rc.SetReadDeadline(time.Now().Add(read))
			// Once the body is read, net/http keeps reading in the
			// background to notice the client going away: that read must
			// not time out while the response is still being written.
			r.Body = &body{ReadCloser: r.Body, done: func() { rc.SetReadDeadline(time.Time{}) }}
		}
		if writeIdle <= 0 {
			h.ServeHTTP(w, r)
			return
		}
		dw := &writer{ResponseWriter: w, rc: rc, idle: writeIdle}
		// A keep-alive connection carries the previous request's deadline:
		// a handler that writes nothing itself still gets its headers out.
		dw.extend()
		h.ServeHTTP(dw, r)
		dw.extend() // for what net/http flushes after the handler returns
	})
}

// body clears the read deadline at the end of a request body.
type body struct {
	io.ReadCloser
	done func()
	once bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.once {
		b.once = true
		b.done()
	}
	return n, err
}

// writer renews the write deadline before each piece of the response.
type writer struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w *writer) extend() { w.rc.SetWriteDeadline(time.Now().Add(w.idle)) }

func (w *writer) WriteHeader(code int) {
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

func (w *writer) Write(p []byte) (int, error) {
	var n int
	for len(p) > 0 {
		k := min(len(p), chunk)
		w.extend()
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// ReadFrom sends src a chunk at a time through the inner writer's ReadFrom,
// which on a plain TCP connection is sendfile: the chunk handed on is an
// *io.LimitedReader of the file itself, the one wrapper sendfile sees
// through.
func (w *writer) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	inner, limit := src, int64(-1)
	if lr, ok := src.(*io.LimitedReader); ok {
		inner, limit = lr.R, lr.N
	}
	var total int64
	for limit != 0 {
		k := int64(chunk)
		if limit > 0 {
			k = min(k, limit)
		}
		w.extend()
		n, err := rf.ReadFrom(&io.LimitedReader{R: inner, N: k})
		total += n
		if limit > 0 {
			limit -= n
		}
		if err != nil || n < k {
			if lr, ok := src.(*io.LimitedReader); ok {
				lr.N = limit
			}
			return total, err
		}
	}
	if lr, ok := src.(*io.LimitedReader); ok {
		lr.N = 0
	}
	return total, nil
}

// FlushError flushes with a fresh deadline (http.ResponseController and
// echo flush through it: server-sent events).
func (w *writer) FlushError() error {
	w.extend()
	return w.rc.Flush()
}

// Flush is FlushError for callers that type-assert http.Flusher.
func (w *writer) Flush() { w.FlushError() }

// Unwrap lets http.ResponseController reach the connection.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
