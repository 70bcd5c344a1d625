package pxe

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/undercloud/undercloud/event"
)

// A request naming a machine from an address that is not the machine's
// (Sources) gets no token: a script without credentials and an event.
// Even a valid token, leaked from the machine's own boot, reads no config
// and speaks for no machine from there.
func TestHTTPForeignSource(t *testing.T) {
	e := newBootEnv(t)
	u := parseScript(t, e.scriptFor(t, macA)) // from the machine's own address
	elsewhere := netip.MustParseAddr("10.0.0.5")

	// B lives elsewhere: asking for its script from here mints nothing
	// and decides nothing (no version assigned, no hints recorded).
	e.sources.move(macB, elsewhere)
	s := e.scriptFor(t, macB)
	if strings.Contains(s, "token=") || strings.Contains(s, "kernel") || !strings.Contains(s, "not its own") || !strings.Contains(s, "\nexit\n") {
		t.Errorf("script for a foreign request:\n%s", s)
	}
	if h := e.targets.hintsOf(macB); h != (Hints{}) {
		t.Errorf("Targets was asked for a foreign request: %+v", h)
	}
	denied := e.events.wait(t, func(ev Event) bool { return ev.Kind == event.IPXEDenied })
	if denied.MAC != macB || !denied.IP.IsLoopback() || denied.Error == "" || denied.BootID != "" {
		t.Errorf("denied event = %+v", denied)
	}
	for _, ev := range e.events.all() { // recorded before the answer
		if ev.Kind == event.IPXEScript && ev.MAC == macB {
			t.Errorf("script event for a foreign request: %+v", ev)
		}
	}

	// A moves (its lease is elsewhere now): its own token no longer works
	// from here.
	e.sources.move(macA, elsewhere)
	for name, tc := range map[string]struct {
		url, method string
		kind        event.Kind
	}{
		"ignition":  {u.ignition, "GET", event.IgnitionDenied},
		"booted":    {u.booted, "POST", event.CallbackDenied},
		"heartbeat": {heartbeatURL(t, e, u.booted), "POST", event.CallbackDenied},
	} {
		t.Run(name, func(t *testing.T) {
			if r := curl(t, tc.url, "-X", tc.method); r.status != 403 || len(r.body) != 0 {
				t.Fatalf("%d with %d body bytes, want a bare 403", r.status, len(r.body))
			}
			ev := e.events.wait(t, func(ev Event) bool {
				return ev.Kind == tc.kind && ev.Error == errForeignSource.Error() && (tc.kind == event.IgnitionDenied || ev.File == name)
			})
			if ev.MAC != macA || ev.BootID == "" || ev.Version != version1 || !ev.IP.IsLoopback() {
				t.Errorf("denied event = %+v", ev)
			}
		})
	}
	e.callbacks.mu.Lock()
	defer e.callbacks.mu.Unlock()
	if len(e.callbacks.booted) != 0 || len(e.callbacks.beating) != 0 {
		t.Errorf("callbacks passed on: %+v %+v", e.callbacks.booted, e.callbacks.beating)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "ipxe script denied") {
		t.Errorf("no log line for the denied script:\n%s", logs)
	}
}

// heartbeatURL is the heartbeat URL of a boot of machine A as its config
// would carry it.
func heartbeatURL(t *testing.T, e *bootEnv, _ string) string {
	t.Helper()
	cred, err := e.h.Tokens.MintHeartbeat(macA, version1, "0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	_, hb := ReportURLs(e.srv.URL, macA, version1, "", cred)
	return hb
}
