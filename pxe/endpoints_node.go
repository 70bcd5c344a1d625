package pxe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/images"
)

// authorized is a node request whose token was checked for its MAC and
// version.
type authorized struct {
	mac, version, bootID string
	ip                   netip.Addr
}

// errForeignSource refuses a valid token that came from an address that is
// not its machine's: a token that leaked (a script fetched by someone else
// before this rule, a log, a shoulder) must not read the config or speak for
// the machine.
var errForeignSource = errors.New("source address is not the machine's")

// authorize checks the mac, version and token of a node request, and that
// it comes from the machine's own address (Sources). On failure it has
// answered 403 with an empty body, logged a warning naming the MAC and the
// client address (never the token) and recorded deniedKind.
func (s *server) authorize(w http.ResponseWriter, r *http.Request, deniedKind event.Kind, what string) (authorized, bool) {
	q := r.URL.Query()
	a := authorized{ip: clientIP(r.RemoteAddr), version: q.Get("version")}
	mac, err := parseMAC(q.Get("mac"))
	if err == nil {
		a.mac = mac
		if deniedKind == event.CallbackDenied && what == string(event.Heartbeat) {
			// Heartbeats carry the boot's heartbeat credential, never its
			// token: the one outlives the other (see Tokens.MintHeartbeat).
			a.bootID, err = s.Tokens.CheckHeartbeat(q.Get("token"), mac, a.version)
		} else {
			a.bootID, err = s.Tokens.Check(q.Get("token"), mac, a.version)
		}
	}
	if err == nil && !s.Sources.Allowed(r.Context(), mac, a.ip) {
		err = errForeignSource
	}
	if err == nil {
		return a, true
	}
	ev := Event{Kind: deniedKind, MAC: mac, IP: a.ip, BootID: a.bootID, Version: printable(a.version), File: what, Error: err.Error()}
	shownMAC := mac
	if mac == "" { // events carry canonical MACs only; the log shows what came
		shownMAC = printable(q.Get("mac"))
		ev.Detail = "mac=" + shownMAC
	}
	s.log.Warn(what+" denied", "mac", shownMAC, "ip", a.ip.String(), "version", ev.Version, "err", err)
	s.record(ev)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusForbidden)
	return authorized{}, false
}

// ignition serves /ignition?mac=&version=&token=: the machine's config at
// that version, only for the boot the token was minted for.
func (s *server) ignition(w *respWriter, r *http.Request) {
	// Stamped when the request came: the event is recorded after the
	// answer, by when the node may already have reported booted.
	start := time.Now()
	a, ok := s.authorize(w, r, event.IgnitionDenied, "ignition")
	if !ok {
		return
	}
	log := s.log.With("mac", a.mac, "ip", a.ip.String(), "version", a.version, "boot", a.bootID)
	cred, err := s.Tokens.MintHeartbeat(a.mac, a.version, a.bootID)
	if err != nil {
		log.Error("ignition: cannot mint heartbeat credential", "err", err)
		bare(w, http.StatusInternalServerError)
		return
	}
	req := ConfigRequest{MAC: a.mac, Version: a.version, BootID: a.bootID}
	// The token is the one this request passed Check with: the node's
	// booted report belongs to the same boot.
	req.BootedURL, req.HeartbeatURL = ReportURLs(s.base(r), a.mac, a.version, r.URL.Query().Get("token"), cred)
	cfg, err := s.Configs.Config(r.Context(), req)
	if err != nil {
		log.Error("ignition: no config", "err", err)
		s.record(Event{Time: start, Kind: event.Ignition, MAC: a.mac, IP: a.ip, BootID: a.bootID, Version: a.version, Error: err.Error()})
		bare(w, statusFor(err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/vnd.coreos.ignition+json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(cfg)))
	w.Write(cfg)
	log.Info("ignition served", "bytes", len(cfg))
	s.record(Event{Time: start, Kind: event.Ignition, MAC: a.mac, IP: a.ip, BootID: a.bootID, Version: a.version, Bytes: int64(len(cfg))})
}

// callbackBody is the optional JSON body of /booted and /heartbeat.
type callbackBody struct {
	Digest   string            `json:"digest"`
	Files    map[string]string `json:"files"`
	Hostname string            `json:"hostname"`
}

// callback serves POST /booted and /heartbeat: the node's authenticated
// reports, passed to Callbacks.
func (s *server) callback(kind event.Kind) func(w *respWriter, r *http.Request) {
	what := string(kind)
	return func(w *respWriter, r *http.Request) {
		a, ok := s.authorize(w, r, event.CallbackDenied, what)
		if !ok {
			return
		}
		log := s.log.With("mac", a.mac, "ip", a.ip.String(), "version", a.version, "boot", a.bootID)
		body, status, err := readCallbackBody(w, r)
		if err != nil {
			log.Warn(what+": bad body", "err", err)
			bare(w, status)
			return
		}
		rep := BootReport{
			MAC: a.mac, Version: a.version, BootID: a.bootID, IP: a.ip, Time: time.Now(),
			Digest: body.Digest, Files: body.Files, Hostname: body.Hostname, Agent: agent(r),
		}
		ev := Event{Kind: kind, MAC: a.mac, IP: a.ip, BootID: a.bootID, Version: a.version, Detail: body.Hostname, Time: rep.Time}
		if s.Callbacks != nil {
			if kind == event.Booted {
				err = s.Callbacks.Booted(r.Context(), rep)
			} else {
				err = s.Callbacks.Heartbeat(r.Context(), rep)
			}
		}
		if errors.Is(err, ErrRefused) {
			// Authentic but no longer the machine's (a heartbeat of a
			// replaced boot): a denial, not a failure of the server.
			log.Warn(what+" denied", "err", err)
			ev.Kind, ev.File = event.CallbackDenied, what
		} else if err != nil {
			log.Error(what+": not accepted", "err", err)
		}
		if err != nil {
			ev.Error = err.Error()
			s.record(ev)
			bare(w, statusFor(err))
			return
		}
		if kind == event.Booted {
			log.Info("booted", "hostname", body.Hostname, "digest", body.Digest)
		} else {
			log.Debug("heartbeat")
		}
		s.record(ev)
		w.WriteHeader(http.StatusNoContent)
	}
}

// readCallbackBody reads and checks the optional JSON body, at most
// maxBodyBytes. It returns the status to answer when the body is refused.
func readCallbackBody(w http.ResponseWriter, r *http.Request) (callbackBody, int, error) {
	var b callbackBody
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return b, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes", maxBodyBytes)
		}
		return b, http.StatusBadRequest, fmt.Errorf("read body: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return b, 0, nil
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, http.StatusBadRequest, fmt.Errorf("body is not the expected JSON: %w", err)
	}
	if b.Digest != "" && !images.IsDigest(b.Digest) {
		return b, http.StatusBadRequest, errors.New("digest is not a sha256 digest")
	}
	if len(b.Hostname) > 253 || cleanHostname(b.Hostname) != b.Hostname {
		return b, http.StatusBadRequest, errors.New("hostname is not a host name")
	}
	for path, sum := range b.Files {
		if path == "" || len(path) > 4096 || !images.IsDigest(sum) {
			return b, http.StatusBadRequest, fmt.Errorf("files: %q: want a path and a sha256 digest", printable(path))
		}
	}
	return b, 0, nil
}

// cleanHostname keeps the characters a host name may have.
func cleanHostname(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; isWordRune(rune(c)) && c != '_' {
			out = append(out, c)
		}
	}
	return string(out)
}

// agent is the request's User-Agent as a report records it: printable and
// bounded, since the node chooses it.
func agent(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > 128 {
		ua = ua[:128]
	}
	return printable(ua)
}
