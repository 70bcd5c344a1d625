package inventory

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/event"
)

// Recording events keeps the machine row up to date in the same transaction.
func TestRecordUpdatesMachine(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	mac := testMAC(7)
	ip := netip.MustParseAddr("10.0.0.7")
	t0 := clk.Now()

	steps := []stateStep{
		{Event{Kind: event.DHCPDiscover, Site: "lab", Source: "0.0.0.0:68"}, StateBooting},
		{Event{Kind: event.DHCPAck, Site: "lab", IP: ip}, StateBooting},
		{Event{Kind: event.IPXEScript, Site: "lab", Version: "c1", BootID: "b1", IP: ip, Source: "10.0.0.7:4000"}, StateBooting},
		{Event{Kind: event.Booted, Site: "lab", Version: "c1", BootID: "b1", IP: ip, Detail: `{"digest":"ab"}`}, StateProvisioned},
		{Event{Kind: event.Heartbeat, Site: "lab", Version: "c1", BootID: "b1"}, StateProvisioned},
	}
	recordSteps(t, db, clk, mac, steps)
	m, err := db.Machine(ctx, mac)
	if err != nil {
		t.Fatal(err)
	}
	// The heartbeat changed nothing but last_seen, a second after the
	// booted report: last_seen is written at most every lastSeenEvery.
	// No version was assigned: the one it booted is (AssignFirstVersion).
	want := Machine{MAC: mac, Site: "lab", State: StateProvisioned, CurrentVersion: "c1", AssignedVersion: "c1", LastIP: ip,
		FirstSeen: t0.Add(time.Second), LastSeen: t0.Add(4 * time.Second), Discovered: true}
	if diff := cmp.Diff(want, m, addrs()); diff != "" {
		t.Errorf("machine (-want +got):\n%s", diff)
	}

	evs, err := db.Events(ctx, mac, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(steps) {
		t.Fatalf("%d events, want %d", len(evs), len(steps))
	}
	for i, ev := range evs { // newest first
		s := steps[len(steps)-1-i].ev
		s.MAC, s.At, s.ID = mac, t0.Add(time.Duration(len(steps)-i)*time.Second), ev.ID
		if diff := cmp.Diff(s, ev, addrs()); diff != "" {
			t.Errorf("event %d (-want +got):\n%s", i, diff)
		}
		if i > 0 && ev.ID >= evs[i-1].ID {
			t.Errorf("events not newest first: %d after %d", ev.ID, evs[i-1].ID)
		}
	}

	// A heartbeat lastSeenEvery later is written.
	clk.Advance(lastSeenEvery)
	if err := db.Record(ctx, Event{MAC: mac, Kind: event.Heartbeat, Site: "lab"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m, err = db.Machine(ctx, mac)
	if err != nil || !m.LastSeen.Equal(t0.Add(5*time.Second+lastSeenEvery)) {
		t.Errorf("last_seen after a heartbeat %s later: %v %v", lastSeenEvery, m.LastSeen, err)
	}
}

func TestEventFeeds(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	var ids []int64
	for i := range 6 {
		site := []string{"a", "b"}[i%2]
		ev, err := db.RecordSync(ctx, Event{MAC: testMAC(i), Site: site, Kind: event.DHCPDiscover})
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID == 0 || !ev.At.Equal(clk.Now()) {
			t.Fatalf("RecordSync returned %+v", ev)
		}
		ids = append(ids, ev.ID)
		clk.Advance(time.Millisecond)
	}
	idsOf := func(evs []Event, err error) []int64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, ev := range evs {
			out = append(out, ev.ID)
		}
		return out
	}
	for name, tc := range map[string]struct {
		got  []int64
		want []int64
	}{
		"recent, all sites":     {idsOf(db.RecentEvents(ctx, "", 3)), []int64{ids[5], ids[4], ids[3]}},
		"recent, site a":        {idsOf(db.RecentEvents(ctx, "a", 0)), []int64{ids[4], ids[2], ids[0]}},
		"after, all sites":      {idsOf(db.EventsAfter(ctx, "", ids[2], 2)), []int64{ids[3], ids[4]}},
		"after, site b":         {idsOf(db.EventsAfter(ctx, "b", ids[1], 0)), []int64{ids[3], ids[5]}},
		"after the last":        {idsOf(db.EventsAfter(ctx, "", ids[5], 0)), nil},
		"of one machine":        {idsOf(db.Events(ctx, testMAC(3), 0)), []int64{ids[3]}},
		"of an unknown machine": {idsOf(db.Events(ctx, testMAC(99), 0)), nil},
	} {
		if diff := cmp.Diff(tc.want, tc.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

func TestRecordRejectsIncompleteEvents(t *testing.T) {
	db := openTest(t, nil)
	for _, ev := range []Event{{Kind: event.TFTP}, {MAC: testMAC(1)}} {
		if err := db.Record(context.Background(), ev); err == nil {
			t.Errorf("Record(%+v) succeeded", ev)
		}
	}
}

func TestStatesValid(t *testing.T) {
	for _, s := range States() {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
	}
	if State("rebooting").Valid() || State("").Valid() {
		t.Error("unknown state valid")
	}
}
