package pxe

import (
	"errors"
	"io/fs"
	"net/http"
	"net/netip"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/images"
	"github.com/undercloud/undercloud/netlimit"
)

// chain serves /boot.ipxe: the fixed script that makes iPXE ask for its own
// machine's script.
func (s *server) chain(w *respWriter, r *http.Request) {
	ip := clientIP(r.RemoteAddr)
	ev := Event{Time: time.Now(), Kind: event.IPXEChain, IP: ip, File: "boot.ipxe"}
	if s.Leases != nil && ip.IsValid() {
		ev.MAC, _ = s.Leases.MACByIP(r.Context(), ip)
	}
	text, err := s.scripts.Chain(s.base(r))
	if err != nil {
		s.log.Warn("boot.ipxe: cannot render chain script", "ip", ip.String(), "mac", ev.MAC, "err", err)
		ev.Error = "bad request host"
		s.record(ev)
		bare(w, http.StatusBadRequest)
		return
	}
	s.log.Debug("boot.ipxe served", "ip", ip.String(), "mac", ev.MAC)
	s.record(ev)
	writeScript(w, text)
}

// script serves /ipxe?mac=…: the machine's own script, and mints the boot's
// id and token. Only a request from the machine's own address (Sources) is
// answered so: the token in the script reads the machine's config and
// speaks for it in callbacks. Any other gets a script without credentials,
// and no target is decided for it (deciding may assign a version).
func (s *server) script(w *respWriter, r *http.Request) {
	start := time.Now() // events are stamped when the request came, not when it was answered
	ip := clientIP(r.RemoteAddr)
	q := r.URL.Query()
	mac, err := parseMAC(q.Get("mac"))
	if err != nil {
		s.log.Info("ipxe script: bad MAC", "ip", ip.String(), "mac", printable(q.Get("mac")))
		bare(w, http.StatusBadRequest)
		return
	}
	log := s.log.With("mac", mac, "ip", ip.String())
	if !s.Sources.Allowed(r.Context(), mac, ip) {
		s.denyScript(w, mac, ip)
		return
	}
	t, err := s.Targets.Target(r.Context(), mac, hintsFrom(q, ip))
	if err != nil {
		log.Error("ipxe script: cannot decide target", "err", err)
		bare(w, statusFor(err))
		return
	}
	t.MAC = mac
	bootID := NewBootID()
	var token string
	if t.NeedsToken() {
		if token, err = s.Tokens.Mint(mac, t.Version, bootID); err != nil {
			log.Error("ipxe script: cannot mint token", "err", err)
			bare(w, http.StatusInternalServerError)
			return
		}
	}
	base := s.base(r)
	text, err := s.scripts.Script(t, base, token)
	if err != nil {
		log.Error("ipxe script: cannot render", "site", t.Site, "version", t.Version, "err", err)
		bare(w, http.StatusInternalServerError)
		return
	}
	action := t.Action()
	log.Info("ipxe script served", "site", t.Site, "machine", t.Machine, "role", t.Role,
		"version", t.Version, "action", action.String(), "boot", bootID)
	s.record(Event{
		Time: start, Kind: event.IPXEScript, MAC: mac, IP: ip, BootID: bootID,
		Site: t.Site, Machine: t.Machine, Version: t.Version, Detail: action.String(),
	})
	writeScript(w, text)
}

// denyScript answers a script request from an address that is not
// machine mac's: a script that says so and exits, and an ipxe-denied event.
func (s *server) denyScript(w *respWriter, mac string, ip netip.Addr) {
	const why = "source address is not the machine's"
	s.log.Warn("ipxe script denied: "+why, "mac", mac, "ip", ip.String())
	s.record(Event{Kind: event.IPXEDenied, MAC: mac, IP: ip, Error: why})
	text, err := s.scripts.render("denied.ipxe", struct{ MAC string }{mac}) // mac is canonical: safe in a script
	if err != nil {
		s.log.Error("ipxe script: cannot render", "mac", mac, "err", err)
		bare(w, http.StatusInternalServerError)
		return
	}
	writeScript(w, text)
}

func writeScript(w http.ResponseWriter, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store") // a script is per boot: never reuse one
	w.Write([]byte(text))
}

// artifact serves /images/sha256/<hex>: immutable, so cacheable forever and
// named by its own digest (ETag); http.ServeContent answers Range and
// If-None-Match. An optional ?mac= names the machine in the event; without
// it (the rootfs URL, a mirror's) the lease of the client's address does.
//
// The event is recorded after the transfer but stamped with the request's
// start: the download began before the node's booted report, and under load
// it may end after it. Stamped at its end, this step without a boot id
// would look like the start of a later boot (inventory's nextState).
func (s *server) artifact(w *respWriter, r *http.Request) {
	start := time.Now()
	ip := clientIP(r.RemoteAddr)
	digest := r.PathValue("digest")
	mac, _ := parseMAC(r.URL.Query().Get("mac"))
	if mac == "" && s.Leases != nil && ip.IsValid() {
		mac, _ = s.Leases.MACByIP(r.Context(), ip)
	}
	ev := Event{Time: start, Kind: event.Artifact, MAC: mac, IP: ip, File: printable(digest)}
	defer func() {
		ev.Bytes = w.bytes
		if w.Status() >= 400 {
			ev.Error = http.StatusText(w.Status())
		}
		s.record(ev)
	}()
	if !images.IsDigest(digest) {
		s.log.Info("artifact: not a sha256 digest", "mac", mac, "ip", ip.String(), "file", ev.File)
		bare(w, http.StatusNotFound)
		return
	}
	f, err := s.Artifacts.Open(digest)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("artifact: not in the store", "mac", mac, "ip", ip.String(), "sha256", digest)
			bare(w, http.StatusNotFound)
			return
		}
		s.log.Error("artifact: cannot open", "mac", mac, "ip", ip.String(), "sha256", digest, "err", err)
		bare(w, http.StatusInternalServerError)
		return
	}
	defer f.Close()
	if !allowRanges(w, r, f) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("ETag", `"`+digest+`"`)
	// No modification time: the digest is the version, and a Last-Modified
	// would only invite needless revalidation.
	netlimit.Bulk(r, func() { http.ServeContent(w, r, "", time.Time{}, f) })
	s.log.Info("artifact served", "mac", mac, "ip", ip.String(), "sha256", digest, "status", w.Status(), "bytes", w.bytes)
}

// firmware serves /firmware/<name>: the TFTP allow-list over HTTP, for
// UEFI HTTP boot. The binaries change with the ipxe package, so they are
// revalidated rather than cached.
func (s *server) firmware(w *respWriter, r *http.Request) {
	ip := clientIP(r.RemoteAddr)
	raw := r.PathValue("name")
	ev := Event{Time: time.Now(), Kind: event.Firmware, IP: ip, File: printable(raw)} // stamped at the start, as artifact's
	if s.Leases != nil && ip.IsValid() {
		ev.MAC, _ = s.Leases.MACByIP(r.Context(), ip)
	}
	defer func() {
		ev.Bytes = w.bytes
		s.record(ev)
	}()
	f, name, err := s.Firmware.Open(raw)
	if err != nil {
		ev.Error = refusal(err)
		s.log.Info("firmware refused", "ip", ip.String(), "mac", ev.MAC, "file", ev.File, "err", err)
		bare(w, http.StatusNotFound)
		return
	}
	defer f.Close()
	var mod time.Time
	if st, err := f.Stat(); err == nil {
		mod = st.ModTime()
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, mod, f)
	s.log.Info("firmware served", "ip", ip.String(), "mac", ev.MAC, "file", name, "status", w.Status(), "bytes", w.bytes)
}
