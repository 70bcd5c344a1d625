package pxe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/undercloud/undercloud/event"
)

// ErrNotFound is what Targets, Configs and Callbacks implementations wrap
// when they do not know the machine or version asked for; the handlers answer
// 404 to it and 500 to any other error.
var ErrNotFound = errors.New("not found")

// ErrRefused is what Callbacks implementations wrap when an authentic
// report may no longer speak for its machine (a heartbeat of a boot the
// machine has since replaced); the handlers answer 403.
var ErrRefused = errors.New("refused")

// Targets decides what a machine boots, from the active site versions and
// the inventory. An unknown machine is a Target of kind TargetNone or
// TargetDiscovery, not an error. Implementations may record the hints.
type Targets interface {
	Target(ctx context.Context, mac string, hints Hints) (Target, error)
}

// Configs returns a machine's Ignition config, rendered for its role at
// req.Version, already validated, with req's per-boot values in it (see
// ConfigRequest).
type Configs interface {
	Config(ctx context.Context, req ConfigRequest) ([]byte, error)
}

// Callbacks receives the node's authenticated reports.
type Callbacks interface {
	Booted(ctx context.Context, r BootReport) error
	Heartbeat(ctx context.Context, r BootReport) error
}

// Sources says whether ip, a request's source address, is machine mac's own:
// its DHCP lease, its reservation, or in proxy mode what its DHCP traffic and
// the neighbour table show. Tokens are minted, and configs and callbacks
// accepted, only for requests from there: a token is a credential, and
// anyone who reaches the port can name a MAC.
type Sources interface {
	Allowed(ctx context.Context, mac string, ip netip.Addr) bool
}

// Artifacts opens an image artifact by sha256 digest; a missing one is an
// error wrapping fs.ErrNotExist. *Store implements it.
type Artifacts interface {
	Open(digest string) (*os.File, error)
}

// BootReport is a node's booted or heartbeat callback, after its token was
// checked: MAC, Version and BootID are authentic; the rest is what the node
// says about itself.
type BootReport struct {
	MAC     string
	Version string
	BootID  string
	IP      netip.Addr
	Time    time.Time
	// Digest is the sha256 of what Ignition wrote, Files each written file's
	// sha256 by path, Hostname the node's name: all optional.
	Digest   string
	Files    map[string]string
	Hostname string
	// Agent is the request's User-Agent (printable, at most 128 bytes):
	// ReportAgent when the config's undercloud-booted.service sent it.
	Agent string
}

// HTTP serves the machine-facing endpoints of docs/boot-flow.md: /boot.ipxe,
// /ipxe, /images/sha256/<hex>, /firmware/<name>, /ignition, /booted and
// /heartbeat. Errors are bare statuses (the machine cannot act on an
// explanation); the log says why, naming the MAC.
type HTTP struct {
	Targets   Targets   // required
	Configs   Configs   // required
	Artifacts Artifacts // required
	Tokens    *Tokens   // required, with a key
	Sources   Sources   // required: whose address may have a token, a config, a callback
	Callbacks Callbacks // optional: nil accepts callbacks and only records them
	Firmware  Firmware  // the iPXE binaries of /firmware/
	Leases    Leases    // optional: names the machine of a chain request by its IP
	Recorder  Recorder  // optional: receives every boot event; must not block
	Metrics   Metrics   // optional
	Log       *slog.Logger
	// BaseURL is the server's URL as machines reach it, for the URLs in
	// scripts (e.g. http://10.0.0.1:8080); empty means built from each
	// request's Host, which is what iPXE itself used to get here.
	BaseURL string
	// TestHold is a test hook, off when empty (see holdForTest): a request
	// for this path (e.g. "/boot.ipxe") is held unanswered until its client
	// goes away or the process dies. Only UNDERCLOUD_TEST_HOLD sets it.
	TestHold string
}

// maxBodyBytes bounds a callback's JSON body.
const maxBodyBytes = 64 << 10

// server is an HTTP configuration checked and ready to serve.
type server struct {
	HTTP
	scripts *Scripts
	log     *slog.Logger
}

// Handler checks the configuration, parses the script templates and returns
// the handler of every endpoint, for `web` to mount or for Serve.
func (h *HTTP) Handler() (http.Handler, error) {
	switch {
	case h.Targets == nil:
		return nil, errors.New("pxe http: no Targets")
	case h.Configs == nil:
		return nil, errors.New("pxe http: no Configs")
	case h.Artifacts == nil:
		return nil, errors.New("pxe http: no Artifacts")
	case h.Sources == nil:
		return nil, errors.New("pxe http: no Sources")
	case h.Tokens == nil || len(h.Tokens.Key) < MinTokenKeyLen:
		return nil, fmt.Errorf("pxe http: Tokens needs a key of at least %d bytes", MinTokenKeyLen)
	}
	if h.BaseURL != "" {
		if err := checkBase(h.BaseURL); err != nil {
			return nil, fmt.Errorf("pxe http: %w", err)
		}
	}
	if err := h.Firmware.Check(); err != nil {
		return nil, fmt.Errorf("pxe http: %w", err)
	}
	sc, err := ParseScripts()
	if err != nil {
		return nil, err
	}
	s := &server{HTTP: *h, scripts: sc, log: logger(h.Log)}
	mux := http.NewServeMux()
	mux.Handle("GET /boot.ipxe", s.endpoint("boot.ipxe", s.chain))
	mux.Handle("GET /ipxe", s.endpoint("ipxe", s.script))
	mux.Handle("GET /images/sha256/{digest}", s.endpoint("images", s.artifact))
	mux.Handle("GET /firmware/{name}", s.endpoint("firmware", s.firmware))
	mux.Handle("GET /ignition", s.endpoint("ignition", s.ignition))
	mux.Handle("POST /booted", s.endpoint("booted", s.callback(event.Booted)))
	mux.Handle("POST /heartbeat", s.endpoint("heartbeat", s.callback(event.Heartbeat)))
	if s.TestHold != "" {
		return s.holdForTest(mux), nil
	}
	return mux, nil
}

// endpoint wraps a handler to count its request by endpoint and status.
func (s *server) endpoint(name string, f func(w *respWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &respWriter{ResponseWriter: w}
		f(rw, r)
		if s.Metrics != nil {
			s.Metrics.HTTPRequest(name, rw.Status())
		}
	})
}

// base is the server's URL for the scripts served to r.
func (s *server) base(r *http.Request) string {
	if s.BaseURL != "" {
		return s.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if host == "" { // HTTP/1.0 without Host: the address the request came in on
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			host = a.String()
		}
	}
	return scheme + "://" + host
}

// record sends e to the Recorder, stamped with the time.
func (s *server) record(e Event) {
	if s.Recorder == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s.Recorder.Record(e)
}

// bare answers a status without a body: machine-facing errors explain
// nothing to the machine; the log does.
func bare(w http.ResponseWriter, status int) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

// statusFor maps an error of an interface implementation to a bare status.
func statusFor(err error) int {
	if errors.Is(err, ErrNotFound) {
		return http.StatusNotFound
	}
	if errors.Is(err, ErrRefused) {
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// respWriter remembers the status and the bytes written, for events and
// metrics, and keeps the sendfile path of http.ServeContent open (ReadFrom).
type respWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

// WriteHeader remembers the first status.
func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write counts the bytes of the body.
func (w *respWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom counts too, and lets io.Copy reach the connection's own ReadFrom
// (sendfile) for artifacts.
func (w *respWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, r)
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Status is the response's status, 200 when the handler wrote none.
func (w *respWriter) Status() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
