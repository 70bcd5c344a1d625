package dhcp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// inbound is one received request.
type inbound struct {
	req  *dhcpv4.DHCPv4
	peer netip.AddrPort // source of the datagram
	port int            // local port it came to: ServerPort or ProxyPort
	// fromMemory asks for an answer only if the lease store can give it
	// without waiting (see fastLeases); otherwise handle returns
	// outcomeDeferred, having recorded and logged nothing.
	fromMemory bool
}

// outbound is the reply to send, if any.
type outbound struct {
	reply     *dhcpv4.DHCPv4
	dst       netip.AddrPort
	broadcast bool // send to 255.255.255.255 on the request's interface
}

// exchange carries what handle learnt about one request to its helpers.
type exchange struct {
	req    *dhcpv4.DHCPv4
	mac    net.HardwareAddr
	boot   Boot
	subnet Subnet
	log    plog
	leases Leases  // s.Leases, or its memory-only view (inbound.fromMemory)
	events []Event // recorded once the answer is decided, not if deferred
}

func (x *exchange) record(e Event) { x.events = append(x.events, e) }

// plog logs about one packet. It keeps the packet's keys and adds them only
// when a record is written: at thousands of packets a second, building a
// logger per packet that logs nothing costs more than answering it.
type plog struct {
	l     *slog.Logger
	attrs []any
}

func (p plog) with(args ...any) plog {
	return plog{p.l, append(append(make([]any, 0, len(p.attrs)+len(args)), p.attrs...), args...)}
}

func (p plog) log(level slog.Level, msg string, args ...any) {
	if !p.l.Enabled(context.Background(), level) {
		return
	}
	p.l.Log(context.Background(), level, msg, append(append(make([]any, 0, len(p.attrs)+len(args)), p.attrs...), args...)...)
}

// macText prints a hardware address as aa:bb:cc:dd:ee:ff in log lines, but
// only when the line is written: slog would print a bare []byte as raw bytes.
type macText net.HardwareAddr

func (m macText) LogValue() slog.Value { return slog.StringValue(net.HardwareAddr(m).String()) }

func (p plog) Debug(msg string, args ...any) { p.log(slog.LevelDebug, msg, args...) }
func (p plog) Info(msg string, args ...any)  { p.log(slog.LevelInfo, msg, args...) }
func (p plog) Warn(msg string, args ...any)  { p.log(slog.LevelWarn, msg, args...) }
func (p plog) Error(msg string, args ...any) { p.log(slog.LevelError, msg, args...) }

// handle decides what to answer to one request. Every decision goes through
// Plan and Leases; the packet itself is built by the pure reply function.
func (s *Server) handle(ctx context.Context, in inbound) (*outbound, Kind, Outcome) {
	req := in.req
	kind := kindOf(req.MessageType())
	log := plog{s.logger(), []any{"mac", macText(req.ClientHWAddr), "xid", req.TransactionID}}
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		log.Debug("dhcp: ignored: not a request", "op", req.OpCode.String())
		return nil, kind, OutcomeIgnored
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		log.Debug("dhcp: ignored: not an Ethernet client", "htype", req.HWType.String())
		return nil, kind, OutcomeIgnored
	}
	if kind == KindOther {
		log.Debug("dhcp: ignored: message type not handled (plain BOOTP?)", "type", req.MessageType().String())
		return nil, kind, OutcomeIgnored
	}
	if in.port == ProxyPort && kind != KindRequest {
		log.Debug("dhcp: ignored on the proxy port", "type", req.MessageType().String())
		return nil, kind, OutcomeIgnored
	}

	// RFC 2131 4.3.1: the subnet is the relay's (giaddr), else the one the
	// client already has an address in (ciaddr), else our own segment.
	link := addr(req.GatewayIPAddr)
	if !link.IsValid() {
		link = addr(req.ClientIPAddr)
	}
	if !link.IsValid() {
		link = s.ServerIP
	}
	sn, ok := s.Plan.Subnet(link)
	if !ok {
		if gi := addr(req.GatewayIPAddr); gi.IsValid() {
			log.Debug("dhcp: ignored: relay from an unknown subnet", "relay", gi.String())
		} else {
			log.Debug("dhcp: ignored: no subnet for this segment", "ip", link.String())
		}
		return nil, kind, OutcomeIgnored
	}
	x := &exchange{
		req:    req,
		mac:    req.ClientHWAddr,
		boot:   Classify(req),
		subnet: sn,
		log:    log.with("site", sn.Site),
		leases: s.Leases,
		events: make([]Event, 0, 2), // a request and its answer
	}
	if in.fromMemory && s.Leases != nil {
		c, _ := s.Leases.(LeaseCache)
		x.leases = fastLeases{c}
	}
	if gi := addr(req.GatewayIPAddr); gi.IsValid() {
		x.log = x.log.with("relay", gi.String())
	}

	var a *answer
	var outcome Outcome
	switch {
	case in.port == ProxyPort:
		// After a proxy offer, a PXE client asks the boot server (us)
		// again for its boot file, on port 4011.
		a, outcome = s.proxyOffer(x, KindRequest)
	case kind == KindDiscover:
		a, outcome = s.discover(ctx, x)
	case kind == KindRequest:
		a, outcome = s.request(ctx, x)
	case kind == KindRelease:
		outcome = s.release(ctx, x)
	case kind == KindDecline:
		outcome = s.decline(ctx, x)
	case kind == KindInform:
		a, outcome = s.inform(x)
	}
	if outcome == outcomeDeferred {
		return nil, kind, outcome
	}
	for _, e := range x.events {
		s.record(e)
	}
	if a == nil {
		return nil, kind, outcome
	}
	rep := reply(req, *a, s.ServerIP, s.bootConfig())
	dst, bcast := destination(req, rep, in.peer, in.port)
	return &outbound{reply: rep, dst: dst, broadcast: bcast}, kind, outcome
}

func kindOf(t dhcpv4.MessageType) Kind {
	switch t {
	case dhcpv4.MessageTypeDiscover:
		return KindDiscover
	case dhcpv4.MessageTypeRequest:
		return KindRequest
	case dhcpv4.MessageTypeRelease:
		return KindRelease
	case dhcpv4.MessageTypeDecline:
		return KindDecline
	case dhcpv4.MessageTypeInform:
		return KindInform
	}
	return KindOther
}

func (s *Server) discover(ctx context.Context, x *exchange) (*answer, Outcome) {
	sn := x.subnet
	if sn.Proxy {
		return s.proxyOffer(x, KindDiscover)
	}
	res, known := s.Plan.Reservation(x.mac)
	ev := s.event(x, KindDiscover, netip.Addr{})
	ev.Known, ev.Hostname = known, res.Hostname
	x.record(ev)

	var ip netip.Addr
	switch {
	case known && !sn.Prefix.Contains(res.IP):
		x.log.Info("dhcp: no offer: the machine's reserved address is not on this segment", "ip", res.IP.String())
		return nil, OutcomeIgnored
	case known:
		ip = res.IP
	case sn.Range == nil || s.Leases == nil:
		x.log.Info("dhcp: no offer: unknown machine and no dynamic range", "state", "discovered", "arch", x.boot.Firmware.String())
		return nil, OutcomeIgnored
	default:
		var err error
		ip, err = x.leases.Offer(ctx, x.mac, sn, addr(x.req.RequestedIPAddress()))
		if errors.Is(err, errDeferred) {
			return nil, outcomeDeferred
		}
		if errors.Is(err, ErrRangeFull) {
			x.log.Warn("dhcp: no offer: the dynamic range is full")
			return nil, OutcomeIgnored
		}
		if err != nil {
			x.log.Error("dhcp: no offer: lease store failed", "err", err)
			return nil, OutcomeError
		}
		if !sn.Range.Contains(ip) {
			x.log.Error("dhcp: no offer: lease store offered an address outside the range", "ip", ip.String())
			return nil, OutcomeError
		}
	}
	a := s.addressAnswer(x, dhcpv4.MessageTypeOffer, ip, res.Hostname)
	s.logBoot(x, "dhcp: offer", ip, known)
	ev = s.event(x, KindOffer, ip)
	ev.Known, ev.Hostname, ev.File = known, res.Hostname, s.fileFor(x.boot)
	x.record(ev)
	return a, OutcomeReply
}

func (s *Server) request(ctx context.Context, x *exchange) (*answer, Outcome) {
	sn := x.subnet
	sid := addr(x.req.ServerIdentifier())
	if sid.IsValid() && sid != s.ServerIP {
		// RFC 2131 4.3.2: the client chose another server's offer.
		x.log.Debug("dhcp: ignored: request for another server", "server", sid.String())
		return nil, OutcomeIgnored
	}
	if sn.Proxy {
		if sid != s.ServerIP {
			// For the network's DHCP server, not for us.
			x.log.Debug("dhcp: ignored: request on a proxy segment")
			return nil, OutcomeIgnored
		}
		return s.proxyOffer(x, KindRequest)
	}
	// SELECTING and INIT-REBOOT name the address in option 50,
	// RENEWING and REBINDING in ciaddr.
	requested := addr(x.req.RequestedIPAddress())
	if !requested.IsValid() {
		requested = addr(x.req.ClientIPAddr)
	}
	if !requested.IsValid() {
		x.log.Debug("dhcp: ignored: request names no address")
		return nil, OutcomeIgnored
	}
	res, known := s.Plan.Reservation(x.mac)
	ev := s.event(x, KindRequest, requested)
	ev.Known, ev.Hostname = known, res.Hostname
	x.record(ev)

	var want netip.Addr
	switch {
	case !sn.Prefix.Contains(requested):
		return s.nak(x, requested, known, "requested address is not on this network")
	case known:
		want = res.IP
	case sn.Range == nil || s.Leases == nil:
		// We have no record of this client and nothing to give it:
		// RFC 2131 4.3.2 says stay silent.
		x.log.Debug("dhcp: ignored: request from an unknown machine and no dynamic range")
		return nil, OutcomeIgnored
	default:
		var err error
		want, err = x.leases.Offer(ctx, x.mac, sn, requested)
		if errors.Is(err, errDeferred) {
			return nil, outcomeDeferred
		}
		if errors.Is(err, ErrRangeFull) {
			return s.nak(x, requested, known, "requested address is not available")
		}
		if err != nil {
			x.log.Error("dhcp: no ack: lease store failed", "err", err)
			return nil, OutcomeError
		}
	}
	if want != requested {
		return s.nak(x, requested, known, "requested address is not the one for this machine")
	}
	now := s.now()
	lease := Lease{Site: sn.Site, MAC: x.mac, IP: want, Hostname: res.Hostname, Known: known, Expires: now.Add(leaseTime(sn))}
	expires := lease.Expires
	if s.Leases != nil {
		var err error
		if expires, err = x.leases.Commit(ctx, lease); errors.Is(err, errDeferred) {
			return nil, outcomeDeferred
		} else if errors.Is(err, ErrConflict) {
			return s.nak(x, requested, known, "requested address is held by another machine")
		} else if err != nil {
			// No ACK without a durable lease; the client retries.
			x.log.Error("dhcp: no ack: lease commit failed", "ip", want.String(), "err", err)
			return nil, OutcomeError
		}
	}
	a := s.addressAnswer(x, dhcpv4.MessageTypeAck, want, res.Hostname)
	// The ACK never promises more than the store holds (a cached lease
	// has less left than a fresh one).
	if left := expires.Sub(now).Truncate(time.Second); left > 0 && left < a.lease {
		a.lease = left
	}
	s.logBoot(x, "dhcp: ack", want, known)
	ev = s.event(x, KindAck, want)
	ev.Known, ev.Hostname, ev.File = known, res.Hostname, s.fileFor(x.boot)
	x.record(ev)
	return a, OutcomeReply
}

func (s *Server) nak(x *exchange, requested netip.Addr, known bool, reason string) (*answer, Outcome) {
	x.log.Info("dhcp: nak", "ip", requested.String(), "reason", reason)
	ev := s.event(x, KindNak, requested)
	ev.Known, ev.Reason = known, reason
	x.record(ev)
	return &answer{kind: dhcpv4.MessageTypeNak, message: reason}, OutcomeNak
}

func (s *Server) release(ctx context.Context, x *exchange) Outcome {
	ip := addr(x.req.ClientIPAddr)
	if sid := addr(x.req.ServerIdentifier()); (sid.IsValid() && sid != s.ServerIP) || !ip.IsValid() || x.subnet.Proxy {
		x.log.Debug("dhcp: ignored: release not for us")
		return OutcomeIgnored
	}
	x.record(s.event(x, KindRelease, ip))
	if s.Leases != nil {
		if err := x.leases.Release(ctx, x.mac, ip); errors.Is(err, errDeferred) {
			return outcomeDeferred
		} else if err != nil {
			x.log.Error("dhcp: release failed", "ip", ip.String(), "err", err)
			return OutcomeError
		}
	}
	x.log.Info("dhcp: release", "ip", ip.String())
	return OutcomeDone
}

func (s *Server) decline(ctx context.Context, x *exchange) Outcome {
	ip := addr(x.req.RequestedIPAddress())
	if sid := addr(x.req.ServerIdentifier()); (sid.IsValid() && sid != s.ServerIP) || !ip.IsValid() || x.subnet.Proxy {
		x.log.Debug("dhcp: ignored: decline not for us")
		return OutcomeIgnored
	}
	res, known := s.Plan.Reservation(x.mac)
	ev := s.event(x, KindDecline, ip)
	ev.Known, ev.Hostname = known, res.Hostname
	if reason := declineRefused(x.subnet, known, ip); reason != "" {
		// DHCPDECLINE is unauthenticated: anyone who spoofs a machine's
		// MAC could otherwise hold its reserved address from it. Only a
		// dynamic address can be swapped for another one; a reserved
		// address is the machine's only one, so holding it helps nobody.
		ev.Reason = reason
		x.record(ev)
		x.log.Warn("dhcp: decline ignored: "+reason, "ip", ip.String(), "known", known)
		return OutcomeIgnored
	}
	x.record(ev)
	var err error
	if s.Leases != nil {
		if err = x.leases.Decline(ctx, x.mac, ip); errors.Is(err, errDeferred) {
			return outcomeDeferred // logged by the worker
		}
	}
	// Another host answers ARP for an address we gave: a static address
	// inside the plan, or a second DHCP server.
	x.log.Warn("dhcp: decline: the client found its address in use", "ip", ip.String())
	if err != nil {
		x.log.Error("dhcp: decline failed", "ip", ip.String(), "err", err)
		return OutcomeError
	}
	return OutcomeDone
}

// declineRefused says why a DECLINE of ip must change nothing, "" when it
// may hold the address: only an address of sn's dynamic range declined by
// a machine without a reservation is held. A known machine's address is its
// reservation, and the gate keeps every reservation out of the dynamic
// ranges, so an address outside them may be some machine's reservation.
func declineRefused(sn Subnet, known bool, ip netip.Addr) string {
	switch {
	case known:
		return "the address is a known machine's reservation"
	case sn.Range == nil || !sn.Range.Contains(ip):
		return "the address is outside the dynamic range"
	}
	return ""
}

func (s *Server) inform(x *exchange) (*answer, Outcome) {
	ci := addr(x.req.ClientIPAddr)
	if !ci.IsValid() || x.subnet.Proxy {
		x.log.Debug("dhcp: ignored: inform without ciaddr or on a proxy segment")
		return nil, OutcomeIgnored
	}
	res, known := s.Plan.Reservation(x.mac)
	ev := s.event(x, KindInform, ci)
	ev.Known, ev.Hostname = known, res.Hostname
	x.record(ev)
	// RFC 2131 3.4: configuration only, no yiaddr and no lease time.
	sn := x.subnet
	a := &answer{kind: dhcpv4.MessageTypeAck, subnet: &sn, hostname: res.Hostname, boot: x.boot}
	s.logBoot(x, "dhcp: ack to inform", ci, known)
	ev = s.event(x, KindAck, ci)
	ev.Known, ev.Hostname, ev.File = known, res.Hostname, s.fileFor(x.boot)
	x.record(ev)
	return a, OutcomeReply
}

// proxyOffer answers a PXE client on a proxy segment: boot information, no
// address. kind is the request's kind (DISCOVER gets an OFFER, REQUEST an ACK).
func (s *Server) proxyOffer(x *exchange, kind Kind) (*answer, Outcome) {
	if !x.boot.Firmware.Bootable() {
		x.log.Debug("dhcp: ignored: not a network boot client on a proxy segment", "arch", x.boot.Firmware.String())
		return nil, OutcomeIgnored
	}
	ev := s.event(x, kind, netip.Addr{})
	ev.Proxy = true
	_, ev.Known = s.Plan.Reservation(x.mac)
	x.record(ev)
	t, out := dhcpv4.MessageTypeOffer, KindOffer
	if kind == KindRequest {
		t, out = dhcpv4.MessageTypeAck, KindAck
	}
	a := &answer{kind: t, boot: x.boot, proxy: true}
	s.logBoot(x, "dhcp: proxy "+string(out), netip.Addr{}, ev.Known)
	ev.Kind, ev.File = out, s.fileFor(x.boot)
	x.record(ev)
	return a, OutcomeReply
}

func (s *Server) addressAnswer(x *exchange, t dhcpv4.MessageType, ip netip.Addr, hostname string) *answer {
	sn := x.subnet
	return &answer{kind: t, yiaddr: ip, subnet: &sn, lease: leaseTime(sn), hostname: hostname, boot: x.boot}
}

func leaseTime(sn Subnet) time.Duration {
	if sn.LeaseTime > 0 {
		return sn.LeaseTime
	}
	return DefaultLeaseTime
}

func (s *Server) fileFor(b Boot) string { return bootFile(b.Firmware, s.bootConfig()) }

// logBoot logs a decision at Info, and unsupported firmware too: such a
// machine gets an address but will not boot.
func (s *Server) logBoot(x *exchange, msg string, ip netip.Addr, known bool) {
	args := []any{"known", known, "arch", x.boot.Firmware.String()}
	if ip.IsValid() {
		args = append(args, "ip", ip.String())
	}
	if f := s.fileFor(x.boot); f != "" {
		args = append(args, "file", f)
	}
	if x.boot.Firmware == FirmwareUnknown {
		args = append(args, "option93", x.boot.Arch, "vendor", x.boot.VendorClass)
		msg += " (no boot file for this client architecture)"
	}
	x.log.Info(msg, args...)
}

func (s *Server) event(x *exchange, k Kind, ip netip.Addr) Event {
	return Event{
		Time:  s.now(),
		Kind:  k,
		Site:  x.subnet.Site,
		MAC:   x.mac,
		IP:    ip,
		XID:   xid(x.req.TransactionID),
		Boot:  x.boot,
		Relay: addr(x.req.GatewayIPAddr),
	}
}

func xid(t dhcpv4.TransactionID) uint32 {
	return uint32(t[0])<<24 | uint32(t[1])<<16 | uint32(t[2])<<8 | uint32(t[3])
}

func (s *Server) record(e Event) {
	if s.Recorder != nil {
		s.Recorder.Record(e)
	}
}
