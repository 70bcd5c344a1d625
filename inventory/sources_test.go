package inventory

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/event"
)

func TestBootTrail(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	const v, other = "2222222222222222222222222222222222222222", "1111111111111111111111111111111111111111"
	record := func(ev Event) {
		t.Helper()
		if ev.MAC == "" {
			ev.MAC = testMAC(1)
		}
		if _, err := db.RecordSync(ctx, ev); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	record(Event{Kind: event.IPXEScript, Version: v, BootID: "b0"}) // before the cycle
	since := clk.Now()
	record(Event{Kind: event.DHCPDiscover})
	record(Event{Kind: event.IPXEScript, Version: v, BootID: "b1"})
	record(Event{Kind: event.Artifact, BootID: "b1"})
	record(Event{Kind: event.IPXEDenied})
	record(Event{Kind: event.Ignition, Version: other, BootID: "b1"}) // another version
	record(Event{Kind: event.IgnitionDenied, Version: v, BootID: "b1"})
	record(Event{Kind: event.Ignition, Version: v, BootID: "b1"})
	record(Event{Kind: event.Booted, Version: v})                                // no boot id
	record(Event{MAC: testMAC(2), Kind: event.Booted, Version: v, BootID: "b1"}) // another machine
	record(Event{Kind: event.Booted, Version: v, BootID: "b1"})

	trail := func(n int) []string {
		t.Helper()
		evs, err := db.BootTrail(ctx, testMAC(1), v, since, n)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range evs {
			out = append(out, string(ev.Kind)+" "+ev.BootID)
		}
		return out
	}
	if diff := cmp.Diff([]string{"ipxe-script b1", "ignition b1", "booted b1"}, trail(0)); diff != "" {
		t.Errorf("trail (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ignition b1", "booted b1"}, trail(2)); diff != "" {
		t.Errorf("the latest 2 (-want +got):\n%s", diff)
	}
}
