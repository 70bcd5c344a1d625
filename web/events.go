package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// EventView is one boot event as the UI and the API show it.
type EventView struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	MAC     sites.MAC `json:"mac"`
	Site    string    `json:"site,omitempty"`
	BootID  string    `json:"boot_id,omitempty"`
	Kind    string    `json:"kind"`
	Version string    `json:"version,omitempty"` // the commit
	// VersionRef names Version by its tag (see VersionRef.String).
	VersionRef *VersionRef `json:"version_ref,omitempty"`
	IP         string      `json:"ip,omitempty"`
	Source     string      `json:"source,omitempty"`
	// Detail is the event's detail as stored; for a booted event, the
	// node's report as JSON text (kept for older clients: read Report).
	Detail string `json:"detail,omitempty"`
	// Report is what the node reported with a booted event.
	Report *BootReport `json:"report,omitempty"`
	// Repeats is how many repeats of this step were counted into it rather
	// than stored (a client doing DHCP again and again; see
	// inventory.FoldWindow).
	Repeats int `json:"repeats,omitempty"`
	// Machine and State are the machine's name and state once the event
	// was stored (event streams and the recent-events panel only).
	Machine string `json:"machine,omitempty"`
	State   string `json:"state,omitempty"`
}

func eventView(ev inventory.Event) EventView {
	v := EventView{ID: ev.ID, At: ev.At, MAC: ev.MAC, Site: ev.Site, BootID: ev.BootID, Kind: string(ev.Kind),
		Version: ev.Version, Source: ev.Source, Detail: ev.Detail, Repeats: ev.Repeats}
	if ev.IP.IsValid() {
		v.IP = ev.IP.String()
	}
	if ev.Kind == event.Booted {
		v.Report = bootReport(ev.Detail)
	}
	return v
}

// BootReport is what a node reported with its booted callback
// (docs/boot-flow.md): the digest of the Ignition config it applied, its
// hostname, and the SHA-256 of each file it checked, by path.
type BootReport struct {
	Digest   string            `json:"digest"`
	Hostname string            `json:"hostname"`
	Files    map[string]string `json:"files"`
}

// bootReport reads a booted event's detail, as provision.Service.Booted
// stores it; nil when there is none or it is not a report (an event
// stored by an older server).
func bootReport(detail string) *BootReport {
	if !strings.HasPrefix(detail, "{") {
		return nil
	}
	var r BootReport
	if err := json.Unmarshal([]byte(detail), &r); err != nil {
		return nil
	}
	if r.Files == nil {
		r.Files = map[string]string{}
	}
	return &r
}

// Target is the event's version named for the UI; nil for none.
func (v EventView) Target() *VersionRef {
	if v.VersionRef != nil {
		return v.VersionRef
	}
	return commitRef(v.Version)
}

// withMachines names the machine of each event and says its state now:
// one lookup per machine, not per event.
func (s *server) withMachines(ctx context.Context, evs []inventory.Event) ([]EventView, error) {
	known := map[sites.MAC]inventory.Machine{}
	book := newVersionBook(s.DB)
	out := make([]EventView, 0, len(evs))
	for _, ev := range evs {
		m, ok := known[ev.MAC]
		if !ok {
			var err error
			if m, err = s.DB.Machine(ctx, ev.MAC); err != nil {
				m = inventory.Machine{} // an event may outlive its machine
			}
			known[ev.MAC] = m
		}
		v := eventView(ev)
		v.Machine, v.State = m.Name, string(m.State)
		v.VersionRef = book.named(ctx, ev.Site, ev.Version)
		out = append(out, v)
	}
	return out, nil
}

// recentEvents returns the latest events of a site (all if empty), oldest
// first.
func (s *server) recentEvents(ctx context.Context, site string, n int) ([]EventView, error) {
	evs, err := s.DB.RecentEvents(ctx, site, n)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return s.withMachines(ctx, evs)
}

// apiEvents is the polling feed: the events after the ID given, oldest
// first; without one, the latest events. next is the cursor for the
// following poll.
func (s *server) apiEvents(c echo.Context) error {
	ctx := c.Request().Context()
	site := c.QueryParam("site")
	n, err := intParam(c, "limit", inventory.DefaultPage)
	if err != nil {
		return err
	}
	n = min(max(n, 1), inventory.MaxPage)
	var evs []EventView
	after, before := c.QueryParam("after"), c.QueryParam("before")
	var cursor int64
	switch {
	case before != "":
		// Paging back through the log, newest first.
		b, perr := strconv.ParseInt(before, 10, 64)
		if perr != nil || b < 0 {
			return kindf(ErrBadRequest, "before=%q: want an event ID", before)
		}
		var raw []inventory.Event
		if raw, err = s.DB.EventsBefore(ctx, site, b, n); err == nil {
			evs, err = s.withMachines(ctx, raw)
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"events": evs, "older": olderLink(c, evs, n)})
	case after == "":
		evs, err = s.recentEvents(ctx, site, n)
	default:
		if cursor, err = strconv.ParseInt(after, 10, 64); err != nil || cursor < 0 {
			return kindf(ErrBadRequest, "after=%q: want an event ID", after)
		}
		var raw []inventory.Event
		if raw, err = s.DB.EventsAfter(ctx, site, cursor, n); err == nil {
			evs, err = s.withMachines(ctx, raw)
		}
	}
	if err != nil {
		return err
	}
	if len(evs) > 0 {
		cursor = evs[len(evs)-1].ID
	}
	out := map[string]any{"events": evs, "next": cursor}
	if after == "" && len(evs) > 0 {
		// The latest page, oldest first: older ones are before its first.
		out["older"] = olderLink(c, evs[:1], 1)
	}
	return c.JSON(http.StatusOK, out)
}

// olderLink is the URL of the events before the oldest of evs (newest
// first), empty when evs is short of a full page of n.
func olderLink(c echo.Context, evs []EventView, n int) string {
	if len(evs) < n || len(evs) == 0 {
		return ""
	}
	u := *c.Request().URL
	q := u.Query()
	q.Del("after")
	q.Set("before", strconv.FormatInt(evs[len(evs)-1].ID, 10))
	u.RawQuery = q.Encode()
	return u.RequestURI()
}

// Event stream timing.
const (
	streamPoll      = time.Second
	streamKeepalive = 15 * time.Second
	streamBatch     = 500
)

// eventStream sends the events stored from now on as server-sent events
// (each "id:" is the event ID, so a browser that reconnects resumes with
// Last-Event-ID). It polls the inventory each second: one indexed read per
// open page, and no coupling to the packet path.
func (s *server) eventStream(c echo.Context) error {
	ctx := c.Request().Context()
	site := c.QueryParam("site")
	var cursor int64
	if last := c.Request().Header.Get("Last-Event-ID"); last != "" {
		cursor, _ = strconv.ParseInt(last, 10, 64)
	}
	if cursor <= 0 {
		latest, err := s.DB.RecentEvents(ctx, site, 1)
		if err != nil {
			return err
		}
		if len(latest) > 0 {
			cursor = latest[0].ID
		}
	}
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: pass events at once
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 3000\n: events of site %q after %d\n\n", site, cursor)
	w.Flush()
	tick := time.NewTicker(streamPoll)
	defer tick.Stop()
	quiet := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.Done:
			return nil
		case <-tick.C:
		}
		raw, err := s.DB.EventsAfter(ctx, site, cursor, streamBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("event stream", "err", err)
			}
			return nil
		}
		evs, err := s.withMachines(ctx, raw)
		if err != nil {
			return nil
		}
		for _, ev := range evs {
			b, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: boot\ndata: %s\n\n", ev.ID, b); err != nil {
				return nil
			}
			cursor = ev.ID
		}
		if len(evs) == 0 && time.Since(quiet) < streamKeepalive {
			continue
		}
		if len(evs) == 0 {
			// A comment keeps proxies from closing an idle stream.
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return nil
			}
		}
		quiet = time.Now()
		w.Flush()
	}
}
