package inventory

import (
	"context"
	"testing"

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
	steps := []stateStep{
		{Event{Kind: event.DHCPDiscover, Site: "lab"}, StateBooting},
		{Event{Kind: event.DHCPAck, Site: "lab", IP: ip}, StateBooting},
		{Event{Kind: event.IPXEChain, Site: "lab", IP: ip}, StateBooting},
		{Event{Kind: event.IPXEScript, Site: "lab", IP: ip, Detail: event.NothingToBoot}, StateNothingToBoot},
		{Event{Kind: event.DHCPDiscover, Site: "lab"}, StateBooting},
		{Event{Kind: event.IPXEScript, Site: "lab", IP: ip, Detail: event.NothingToBoot}, StateNothingToBoot},
	}
	recordSteps(t, db, clk, mac, steps)
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
