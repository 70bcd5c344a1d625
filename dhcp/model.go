package dhcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/undercloud/undercloud/event"
)

// DefaultLeaseTime is used when a Subnet has no LeaseTime.
const DefaultLeaseTime = time.Hour

// Subnet is what is handed out on one segment: a site's own subnet or a
// subnet behind a DHCP relay.
type Subnet struct {
	// Site names the site the subnet belongs to (events and leases carry it).
	Site string
	// Prefix is the subnet; it gives the mask (option 1) and bounds every
	// address handed out on the segment.
	Prefix netip.Prefix
	// Router is the default gateway (option 3); invalid means none.
	Router netip.Addr
	// DNS servers (option 6).
	DNS []netip.Addr
	// Domain name (option 15).
	Domain string
	// Range is the dynamic range for unknown machines; nil means unknown
	// machines get no address (they are still reported as discovered).
	Range *Range
	// LeaseTime is the lease duration (option 51); zero means DefaultLeaseTime.
	LeaseTime time.Duration
	// Proxy selects proxyDHCP mode: another server hands out addresses on
	// this segment and we only add boot information for PXE clients.
	Proxy bool
}

// Range is an inclusive range of IPv4 addresses.
type Range struct {
	First, Last netip.Addr
}

// Contains reports whether a is within the range.
func (r Range) Contains(a netip.Addr) bool {
	return a.Is4() && r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// Reservation is a known machine's declared address.
type Reservation struct {
	Site     string
	Hostname string
	IP       netip.Addr
}

// Plan is the active network plan (the sites' configs); it changes when a
// config version activates, so the server asks it on every packet.
type Plan interface {
	// Subnet returns the subnet that contains link: the relay's giaddr for
	// relayed requests, else the client's ciaddr when it has one, else the
	// server's own address (Server.ServerIP) for its own segment.
	Subnet(link netip.Addr) (Subnet, bool)
	// Reservation returns the reservation of a known machine.
	Reservation(mac net.HardwareAddr) (Reservation, bool)
}

// Lease is an address bound to a machine, as committed before an ACK.
type Lease struct {
	Site     string
	MAC      net.HardwareAddr
	IP       netip.Addr
	Hostname string
	// Known is true for a reserved address of a known machine, false for a
	// dynamic address of a discovered one.
	Known   bool
	Expires time.Time
}

// ErrRangeFull is returned by Leases.Offer when the dynamic range has no
// free address.
var ErrRangeFull = errors.New("dynamic range is full")

// ErrConflict is returned (wrapped) by Leases.Commit when the address is
// held by another machine; the server answers the request with a NAK.
var ErrConflict = errors.New("address is held by another machine")

// Leases is the persisted lease table (the inventory). Implementations must
// be safe for concurrent use: many workers call them at once, which lets a
// store batch its commits.
type Leases interface {
	// Offer returns the dynamic address for an unknown MAC in sn.Range: the
	// MAC's current offer or lease if it has one, else want when it is in
	// the range and free, else any free address. It holds the address for
	// the MAC for a short while, so that two machines are never offered the
	// same address, and must return the same address for the same MAC
	// until it is released, declined or expired: the server calls it again
	// on REQUEST to check the requested address. ErrRangeFull when none is free.
	Offer(ctx context.Context, mac net.HardwareAddr, sn Subnet, want netip.Addr) (netip.Addr, error)
	// Commit binds the lease; it must be durable when it returns, because
	// the ACK goes out right after. It returns when the bound lease
	// expires: l.Expires, or earlier when the store keeps a lease it
	// bound to the same MAC and address a moment ago (lease caching, as
	// Kea's cache-threshold: a client asking again soon gets the lease it
	// holds, with its remaining time, and nothing is written). ErrConflict
	// when another MAC holds the IP.
	Commit(ctx context.Context, l Lease) (expires time.Time, err error)
	// Release frees the MAC's lease on ip (DHCPRELEASE).
	Release(ctx context.Context, mac net.HardwareAddr, ip netip.Addr) error
	// Decline marks ip as in use by some other host (DHCPDECLINE: the client
	// found it taken), so it is not offered again for a while. The server
	// calls it only for an address of the dynamic range declined by a
	// machine without a reservation: a reserved address is never held.
	Decline(ctx context.Context, mac net.HardwareAddr, ip netip.Addr) error
}

// LeaseCache is implemented by a Leases that can answer some calls from
// memory: a machine asking again for the lease it holds (lease caching),
// or the REQUEST right after its OFFER. The server tries these first on the
// goroutine that reads the socket, and sends a reply at once when they
// answer; only the packets that need the store go to the workers, which
// may wait for a commit. Both must return at once, without I/O.
type LeaseCache interface {
	// CachedOffer is Offer's answer when it needs no store access.
	CachedOffer(mac net.HardwareAddr, sn Subnet, want netip.Addr) (netip.Addr, bool)
	// CachedCommit is Commit's answer when it needs no write: the lease
	// l asks for is held already, and expires at the time returned.
	CachedCommit(l Lease) (expires time.Time, ok bool)
}

// errDeferred is fastLeases' answer to a call that needs the store.
var errDeferred = errors.New("dhcp: needs the lease store")

// fastLeases is the Leases the reading goroutine uses: what the cache
// knows (nil: a store without one), and errDeferred for everything else.
type fastLeases struct{ c LeaseCache }

func (f fastLeases) Offer(_ context.Context, mac net.HardwareAddr, sn Subnet, want netip.Addr) (netip.Addr, error) {
	if f.c != nil {
		if ip, ok := f.c.CachedOffer(mac, sn, want); ok {
			return ip, nil
		}
	}
	return netip.Addr{}, errDeferred
}

func (f fastLeases) Commit(_ context.Context, l Lease) (time.Time, error) {
	if f.c != nil {
		if exp, ok := f.c.CachedCommit(l); ok {
			return exp, nil
		}
	}
	return time.Time{}, errDeferred
}

func (fastLeases) Release(context.Context, net.HardwareAddr, netip.Addr) error { return errDeferred }
func (fastLeases) Decline(context.Context, net.HardwareAddr, netip.Addr) error { return errDeferred }

// Kind is the kind of a boot event: the DHCP message received or sent.
type Kind string

// The kinds of events, named after the DHCP message types.
const (
	KindDiscover Kind = "discover"
	KindOffer    Kind = "offer"
	KindRequest  Kind = "request"
	KindAck      Kind = "ack"
	KindNak      Kind = "nak"
	KindRelease  Kind = "release"
	KindDecline  Kind = "decline"
	KindInform   Kind = "inform"
	// KindOther counts packets of other or missing message types (metrics only).
	KindOther Kind = "other"
)

// Event returns the boot event kind of a DHCP message kind, "" for
// KindOther (not recorded).
func (k Kind) Event() event.Kind {
	switch k {
	case KindDiscover, KindOffer, KindRequest, KindAck, KindNak, KindRelease, KindDecline, KindInform:
		return event.Kind("dhcp-" + string(k))
	}
	return ""
}

// Event is one boot event, as recorded in the inventory.
type Event struct {
	Time time.Time
	Kind Kind
	Site string
	MAC  net.HardwareAddr
	// IP is the address requested, offered, acknowledged, released or
	// declined; invalid when there is none (proxy mode, a NAK).
	IP  netip.Addr
	XID uint32
	// Known is false for a machine not declared in any site: a discovered one.
	Known    bool
	Hostname string
	// Boot is what the client said about its firmware.
	Boot Boot
	// File is the boot file or URL handed out, "" when none.
	File string
	// Relay is the relay agent's address (giaddr), invalid when not relayed.
	Relay netip.Addr
	// Proxy is true for proxyDHCP answers (no address given).
	Proxy bool
	// Reason explains a NAK.
	Reason string
}

// Recorder receives boot events. Record is called on the packet path, so it
// must not block: buffer, batch or drop, but return at once.
type Recorder interface {
	Record(Event)
}

// Outcome is what became of one packet, for metrics.
type Outcome string

// The outcomes of a packet.
const (
	OutcomeReply     Outcome = "reply"     // answered (offer, ack)
	OutcomeNak       Outcome = "nak"       // answered with a NAK
	OutcomeDone      Outcome = "done"      // handled, no answer due (release, decline)
	OutcomeIgnored   Outcome = "ignored"   // not for us, or nothing to give
	OutcomeMalformed Outcome = "malformed" // could not be parsed
	OutcomeError     Outcome = "error"     // the store or the socket failed

	// outcomeDeferred: the reading goroutine could not answer from memory
	// and hands the packet to a worker (never counted).
	outcomeDeferred Outcome = "deferred"
)

// Metrics is told about every packet, so that the web package can export
// counters by message kind and outcome without this package importing a
// metrics library. It is called on the packet path and must not block.
type Metrics interface {
	Packet(kind Kind, outcome Outcome)
}
