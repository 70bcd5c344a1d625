package dhcp

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// cacheLeases is a store with a lease cache in front (LeaseCache): cached
// MACs are answered from memory; store counts the calls that reach the
// store behind it.
type cacheLeases struct {
	*memLeases
	cached map[string]netip.Addr
	store  atomic.Int32
}

func (c *cacheLeases) CachedOffer(mac net.HardwareAddr, _ Subnet, want netip.Addr) (netip.Addr, bool) {
	ip, ok := c.cached[mac.String()]
	return ip, ok && (!want.IsValid() || want == ip)
}

func (c *cacheLeases) CachedCommit(l Lease) (time.Time, bool) {
	ip, ok := c.cached[l.MAC.String()]
	return l.Expires, ok && ip == l.IP
}

func (c *cacheLeases) Offer(ctx context.Context, mac net.HardwareAddr, sn Subnet, want netip.Addr) (netip.Addr, error) {
	c.store.Add(1)
	return c.memLeases.Offer(ctx, mac, sn, want)
}

func (c *cacheLeases) Commit(ctx context.Context, l Lease) (time.Time, error) {
	c.store.Add(1)
	return c.memLeases.Commit(ctx, l)
}

// The reading goroutine answers from memory what the lease cache knows, and
// defers the rest, untouched, to a worker: nothing recorded, nothing sent,
// no store call, so that the worker's answer is the packet's only one.
func TestAnswerFromMemory(t *testing.T) {
	const cachedMAC, cachedIP = "02:00:00:99:00:77", "10.99.0.177"
	tests := map[string]struct {
		req        func(t *testing.T) *dhcpv4.DHCPv4
		plainStore bool // a Leases without LeaseCache
		wantReply  dhcpv4.MessageType
		wantEvents []string
	}{
		"known machine: no store needed": {
			req:        func(t *testing.T) *dhcpv4.DHCPv4 { return discover(t, knownMAC) },
			plainStore: true,
			wantReply:  dhcpv4.MessageTypeOffer,
			wantEvents: []string{"discover - known=true", "offer " + knownIP + " known=true"},
		},
		"cached offer": {
			req:        func(t *testing.T) *dhcpv4.DHCPv4 { return discover(t, cachedMAC) },
			wantReply:  dhcpv4.MessageTypeOffer,
			wantEvents: []string{"discover - known=false", "offer " + cachedIP + " known=false"},
		},
		"cached lease renewed": {
			req: func(t *testing.T) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRequest, cachedMAC, requested(cachedIP))
			},
			wantReply:  dhcpv4.MessageTypeAck,
			wantEvents: []string{"request " + cachedIP + " known=false", "ack " + cachedIP + " known=false"},
		},
		"unknown machine, nothing cached": {
			req: func(t *testing.T) *dhcpv4.DHCPv4 { return discover(t, unknownMAC) },
		},
		"request of a known machine, not cached": {
			req: func(t *testing.T) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRequest, knownMAC, requested(knownIP))
			},
		},
		"unknown machine, store without a cache": {
			req:        func(t *testing.T) *dhcpv4.DHCPv4 { return discover(t, unknownMAC) },
			plainStore: true,
		},
		"release": {
			req: func(t *testing.T) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRelease, cachedMAC, ciaddr(cachedIP), serverID("10.99.0.1"))
			},
		},
		"decline": {
			req: func(t *testing.T) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeDecline, cachedMAC, requested(cachedIP), serverID("10.99.0.1"))
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec := &memRecorder{}
			m := newMemLeases(func() time.Time { return testNow })
			s := testServer(m, rec)
			c := &cacheLeases{memLeases: m, cached: map[string]netip.Addr{cachedMAC: netip.MustParseAddr(cachedIP)}}
			if !tc.plainStore {
				s.Leases = c
			}
			in := inbound{req: tc.req(t), peer: netip.MustParseAddrPort("0.0.0.0:68"), port: ServerPort, fromMemory: true}
			out, _, outcome := s.handle(context.Background(), in)
			if tc.wantReply == 0 {
				if outcome != outcomeDeferred || out != nil {
					t.Fatalf("outcome %s, reply %v; want deferred, no reply", outcome, out)
				}
			} else if outcome != OutcomeReply || out == nil || out.reply.MessageType() != tc.wantReply {
				t.Fatalf("outcome %s, reply %v; want %s", outcome, out, tc.wantReply)
			}
			if diff := cmp.Diff(tc.wantEvents, rec.summary()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if n := c.store.Load(); n != 0 {
				t.Errorf("%d calls reached the store from the reading goroutine", n)
			}
			if tc.wantReply != 0 {
				return
			}
			// The worker's turn: the whole answer, events recorded once.
			in.fromMemory = false
			if _, _, outcome := s.handle(context.Background(), in); outcome == outcomeDeferred {
				t.Fatal("deferred again by the worker")
			}
			kinds := map[Kind]int{}
			for _, e := range rec.events {
				kinds[e.Kind]++
			}
			for k, n := range kinds {
				if n > 1 {
					t.Errorf("%d %s events; want 1", n, k)
				}
			}
			if len(kinds) == 0 {
				t.Error("the worker recorded nothing")
			}
		})
	}
}
