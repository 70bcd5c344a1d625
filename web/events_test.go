package web

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
)

type eventPage struct {
	Events []EventView
	Next   int64
}

func kinds(evs []EventView) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func TestAPIEvents(t *testing.T) {
	f := newFixture(t, nil)
	var first eventPage
	f.getJSON("/api/v1/events?after=0&limit=3", &first)
	if diff := cmp.Diff([]string{"dhcp-discover", "dhcp-offer", "dhcp-request"}, kinds(first.Events)); diff != "" {
		t.Errorf("first page (-want +got):\n%s", diff)
	}
	if first.Next != first.Events[2].ID || first.Events[0].Machine != "lab-m1" || first.Events[0].State != "provisioned" {
		t.Errorf("first page: next %d, events %+v", first.Next, first.Events)
	}
	var second eventPage
	f.getJSON("/api/v1/events?limit=2&after="+itoa(first.Next), &second)
	if diff := cmp.Diff([]string{"dhcp-ack", "tftp"}, kinds(second.Events)); diff != "" {
		t.Errorf("second page (-want +got):\n%s", diff)
	}
	// Without a cursor: the latest events, oldest first.
	var latest eventPage
	f.getJSON("/api/v1/events?limit=2", &latest)
	if diff := cmp.Diff([]string{"ipxe-script", "dhcp-discover"}, kinds(latest.Events)); diff != "" {
		t.Errorf("latest (-want +got):\n%s", diff)
	}
	var none eventPage
	f.getJSON("/api/v1/events?site=second", &none)
	if len(none.Events) != 0 || none.Events == nil {
		t.Errorf("events of site second: %+v, want an empty list", none)
	}
	if code, _ := f.call(viewerSecret, http.MethodGet, "/api/v1/events?after=x", nil); code != http.StatusBadRequest {
		t.Errorf("after=x: %d, want 400", code)
	}
}

// TestEventStream follows the stream while events are recorded, and checks
// that closing Done ends it.
func TestEventStream(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.http.URL+"/api/v1/events/stream?site=lab", nil)
	req.Header.Set("Authorization", "Bearer "+viewerSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("stream: %d %q", resp.StatusCode, ct)
	}
	// Recorded after the stream opened: these, and only these, come.
	f.record(
		inventory.Event{MAC: macW1, Site: "lab", Kind: event.Ignition, Version: f.versions["v2"]},
		inventory.Event{MAC: "52:54:00:98:00:11", Site: "second", Kind: event.DHCPDiscover},
		inventory.Event{MAC: macW1, Site: "lab", Kind: event.Booted, Version: f.versions["v2"]},
	)
	sc := bufio.NewScanner(resp.Body)
	var got []EventView
	var ids []string
	for len(got) < 2 && sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			ids = append(ids, id)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var ev EventView
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatal(err)
			}
			got = append(got, ev)
		}
	}
	if len(got) != 2 {
		t.Fatalf("stream gave %d events (%v)", len(got), sc.Err())
	}
	if diff := cmp.Diff([]string{"ignition", "booted"}, kinds(got)); diff != "" {
		t.Errorf("streamed events (-want +got):\n%s", diff)
	}
	if got[1].Machine != "lab-w1" || got[1].State != "provisioned" || ids[1] != itoa(got[1].ID) {
		t.Errorf("streamed event: %+v, id %v", got[1], ids)
	}
	// The page of a machine shows the same events in its timeline.
	_, page := f.login(viewerSecret).get("/machines/lab/lab-w1")
	if !strings.Contains(page, `id="machine-state" class="state state-provisioned"`) {
		t.Errorf("machine page does not show lab-w1 provisioned")
	}
}

func TestEventStreamEndsOnDone(t *testing.T) {
	done := make(chan struct{})
	f := newFixture(t, func(s *Server) { s.Done = done })
	req, _ := http.NewRequest(http.MethodGet, f.http.URL+"/api/v1/events/stream", nil)
	req.Header.Set("Authorization", "Bearer "+viewerSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	close(done)
	ended := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
		}
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end when Done closed")
	}
}

// An event that stands for repeats (a client doing DHCP again and again)
// says how many, in the API and on the machine's and the overview's pages.
func TestEventRepeatsShown(t *testing.T) {
	f := newFixture(t, nil)
	f.record(inventory.Event{MAC: macW1, Site: "lab", Kind: event.DHCPDiscover, At: f.clock.Now(), Repeats: 37})
	var latest eventPage
	f.getJSON("/api/v1/events?limit=1", &latest)
	if len(latest.Events) != 1 || latest.Events[0].Repeats != 37 {
		t.Fatalf("latest event %+v, want 37 repeats", latest.Events)
	}
	for _, page := range []string{"/machines/lab/lab-w1", "/"} {
		code, body := f.call(viewerSecret, http.MethodGet, page, nil)
		if code != http.StatusOK || !strings.Contains(string(body), `<span class="repeats" title="37 repeats counted, not stored">×37</span>`) {
			t.Errorf("%s: %d, the event's repeats not shown", page, code)
		}
	}
}
