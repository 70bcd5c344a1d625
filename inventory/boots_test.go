package inventory

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/event"
)

// bootEv is an event at sec seconds of a fixed day; IDs follow the order of
// the literal.
type bootEv struct {
	sec     int
	kind    event.Kind
	bootID  string
	version string
}

var bootBase = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// summary renders a boot as one line: its flags, then kind@second+since.
func summary(b Boot) string {
	var parts []string
	for _, s := range b.Steps {
		parts = append(parts, fmt.Sprintf("%s@%d+%d", s.Kind, int(s.At.Sub(bootBase).Seconds()), int(s.Since.Seconds())))
	}
	return fmt.Sprintf("id=%s version=%s booted=%t failed=%t dur=%s: %s",
		b.BootID, b.Version, b.Booted, b.Failed, b.Duration(), strings.Join(parts, " "))
}

func TestGroupBoots(t *testing.T) {
	const (
		disc   = event.DHCPDiscover
		offer  = event.DHCPOffer
		req    = event.DHCPRequest
		ack    = event.DHCPAck
		tftp   = event.TFTP
		chain  = event.IPXEChain
		script = event.IPXEScript
		art    = event.Artifact
		ign    = event.Ignition
		denied = event.IgnitionDenied
		booted = event.Booted
		beat   = event.Heartbeat
	)
	for name, tc := range map[string]struct {
		events []bootEv
		want   []string
	}{
		"no events": {},
		"one boot, with the OS's own DHCP inside it": {
			events: []bootEv{{0, disc, "", ""}, {0, offer, "", ""}, {1, req, "", ""}, {1, ack, "", ""}, {2, tftp, "", ""},
				{5, disc, "", ""}, {6, ack, "", ""}, {7, chain, "", ""}, {8, script, "b1", "c1"}, {9, art, "b1", ""},
				{12, art, "b1", ""}, {15, disc, "", ""}, {16, ack, "", ""}, {18, ign, "b1", "c1"}, {25, booted, "b1", "c1"},
				{300, beat, "b1", "c1"}, {2000, req, "", ""}, {2000, ack, "", ""}},
			want: []string{"id=b1 version=c1 booted=true failed=false dur=33m20s: " +
				"dhcp-discover@0+0 dhcp-offer@0+0 dhcp-request@1+1 dhcp-ack@1+0 tftp@2+1 dhcp-discover@5+3 dhcp-ack@6+1 " +
				"ipxe-chain@7+1 ipxe-script@8+1 artifact@9+1 artifact@12+3 dhcp-discover@15+3 dhcp-ack@16+1 ignition@18+2 " +
				"booted@25+7 heartbeat@300+275 dhcp-request@2000+1700 dhcp-ack@2000+0"},
		},
		"reboot after booted": {
			events: []bootEv{{0, disc, "", ""}, {5, script, "b1", "c1"}, {20, booted, "b1", "c1"},
				{30, disc, "", ""}, {35, script, "b2", "c2"}, {50, booted, "b2", "c2"}},
			want: []string{
				"id=b1 version=c1 booted=true failed=false dur=20s: dhcp-discover@0+0 ipxe-script@5+5 booted@20+15",
				"id=b2 version=c2 booted=true failed=false dur=20s: dhcp-discover@30+0 ipxe-script@35+5 booted@50+15",
			},
		},
		"failed boot retried after a long silence": {
			events: []bootEv{{0, disc, "", ""}, {2, tftp, "", ""}, {3, disc, "", ""},
				{1000, disc, "", ""}, {1002, tftp, "", ""}},
			want: []string{
				"id= version= booted=false failed=false dur=3s: dhcp-discover@0+0 tftp@2+2 dhcp-discover@3+1",
				"id= version= booted=false failed=false dur=2s: dhcp-discover@1000+0 tftp@1002+2",
			},
		},
		"refused config, quick retry: split where the new boot ID's DHCP began": {
			events: []bootEv{{0, disc, "", ""}, {8, script, "b1", "c1"}, {9, art, "b1", ""}, {15, disc, "", ""},
				{20, denied, "b1", "c1"}, {40, disc, "", ""}, {42, tftp, "", ""}, {45, disc, "", ""}, {48, script, "b2", "c1"}},
			want: []string{
				"id=b1 version=c1 booted=false failed=true dur=20s: dhcp-discover@0+0 ipxe-script@8+8 artifact@9+1 dhcp-discover@15+6 ignition-denied@20+5",
				"id=b2 version=c1 booted=false failed=false dur=8s: dhcp-discover@40+0 tftp@42+2 dhcp-discover@45+3 ipxe-script@48+3",
			},
		},
		"new boot ID without DHCP": {
			events: []bootEv{{0, script, "b1", "c1"}, {5, ign, "b1", "c1"}, {10, script, "b2", "c2"}},
			want: []string{
				"id=b1 version=c1 booted=false failed=false dur=5s: ipxe-script@0+0 ignition@5+5",
				"id=b2 version=c2 booted=false failed=false dur=0s: ipxe-script@10+0",
			},
		},
		"DHCP from another server: TFTP starts the next boot": {
			events: []bootEv{{0, tftp, "", ""}, {10, booted, "", "c1"}, {100, tftp, "", ""}},
			want: []string{
				"id= version=c1 booted=true failed=false dur=10s: tftp@0+0 booted@10+10",
				"id= version= booted=false failed=false dur=0s: tftp@100+0",
			},
		},
		"unordered input": {
			events: []bootEv{{20, booted, "b1", "c1"}, {0, disc, "", ""}, {30, disc, "", ""}, {5, script, "b1", "c1"}},
			want: []string{
				"id=b1 version=c1 booted=true failed=false dur=20s: dhcp-discover@0+0 ipxe-script@5+5 booted@20+15",
				"id= version= booted=false failed=false dur=0s: dhcp-discover@30+0",
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			var evs []Event
			for i, e := range tc.events {
				evs = append(evs, Event{ID: int64(i + 1), At: bootBase.Add(time.Duration(e.sec) * time.Second),
					MAC: testMAC(1), Kind: e.kind, BootID: e.bootID, Version: e.version})
			}
			var got []string
			for _, b := range GroupBoots(evs, 0) {
				got = append(got, summary(b))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("boots (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBoots(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	mac := testMAC(1)
	for _, k := range []event.Kind{event.DHCPDiscover, event.IPXEScript, event.Booted, event.DHCPDiscover, event.IPXEScript} {
		clk.Advance(time.Second)
		if err := db.Record(ctx, Event{MAC: mac, Kind: k, Version: "c1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	boots, err := db.Boots(ctx, mac, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(boots) != 2 || boots[0].Booted || !boots[1].Booted || len(boots[1].Steps) != 3 {
		t.Fatalf("boots, newest first: want an unfinished one then a booted one of 3 steps; got %d: %+v", len(boots), boots)
	}
	if boots, err := db.Boots(ctx, mac, 1); err != nil || len(boots) != 1 || boots[0].Booted {
		t.Fatalf("latest boot only: %+v, %v", boots, err)
	}
}
