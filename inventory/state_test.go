package inventory

import (
	"context"
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// An unknown machine told there is nothing to boot says so, boots again as
// usual, and becomes known once a site config declares it.
func TestNothingToBoot(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	mac := testMAC(9)
	ip := testIP(9)
	steps := []struct {
		ev   Event
		want State
	}{
		{Event{Kind: event.DHCPDiscover, Site: "lab"}, StateBooting},
		{Event{Kind: event.DHCPAck, Site: "lab", IP: ip}, StateBooting},
		{Event{Kind: event.IPXEChain, Site: "lab", IP: ip}, StateBooting},
		{Event{Kind: event.IPXEScript, Site: "lab", IP: ip, Detail: event.NothingToBoot}, StateNothingToBoot},
		{Event{Kind: event.DHCPDiscover, Site: "lab"}, StateBooting},
		{Event{Kind: event.IPXEScript, Site: "lab", IP: ip, Detail: event.NothingToBoot}, StateNothingToBoot},
	}
	for i, s := range steps {
		clk.Advance(time.Second)
		ev := s.ev
		ev.MAC = mac
		if err := db.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		m, err := db.Machine(ctx, mac)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if m.State != s.want {
			t.Errorf("step %d, after %s %s: state %s, want %s", i, ev.Kind, ev.Detail, m.State, s.want)
		}
	}
	if err := db.DeclareMachines(ctx, release("c1", decl("lab-w9", 9, sites.RoleWorker))); err != nil {
		t.Fatal(err)
	}
	m, err := db.Machine(ctx, mac)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != StateKnown || m.Discovered {
		t.Errorf("declared: state %s, discovered %v; want %s, false", m.State, m.Discovered, StateKnown)
	}
}
