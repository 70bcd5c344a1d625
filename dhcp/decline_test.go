package dhcp

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// A DECLINE changes nothing unless it names an address of the dynamic range
// declined by a machine without a reservation: DHCPDECLINE is not
// authenticated, and a hold on a reserved address would lock its machine out.
func TestDeclineRefused(t *testing.T) {
	sn := testPlan().subnets[0]
	tests := map[string]struct {
		sn    Subnet
		known bool
		ip    string
		held  bool
	}{
		"known machine's reservation":             {sn: sn, known: true, ip: knownIP},
		"known machine, address in the range":     {sn: sn, known: true, ip: "10.99.0.150"},
		"reserved address declined by a stranger": {sn: sn, ip: knownIP},
		"segment without dynamic range":           {sn: testPlan().subnets[2], ip: "10.99.8.20"},
		"dynamic address of an unknown machine":   {sn: sn, ip: "10.99.0.150", held: true},
		"first address of the range":              {sn: sn, ip: "10.99.0.100", held: true},
		"last address of the range":               {sn: sn, ip: "10.99.0.199", held: true},
		"just past the range":                     {sn: sn, ip: "10.99.0.200"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			reason := declineRefused(tc.sn, tc.known, netip.MustParseAddr(tc.ip))
			if held := reason == ""; held != tc.held {
				t.Errorf("declineRefused(%s) = %q; held = %t, want %t", tc.ip, reason, held, tc.held)
			}
		})
	}
}

// A spoofed DECLINE of a reserved address (the reserved machine's MAC and
// address, as anyone on the segment can send) is recorded, and the machine
// still gets its address: the DISCOVER after it an OFFER, the REQUEST an ACK,
// never a NAK. Handled from the packet's bytes, as the socket loop does.
func TestSpoofedDeclineOfReservation(t *testing.T) {
	leases := newMemLeases(func() time.Time { return testNow })
	rec := &memRecorder{}
	s := testServer(leases, rec)
	send := func(p *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, Outcome) {
		t.Helper()
		req, err := dhcpv4.FromBytes(p.ToBytes())
		if err != nil {
			t.Fatal(err)
		}
		out, _, outcome := s.handle(context.Background(), inbound{req: req, peer: netip.MustParseAddrPort("0.0.0.0:68"), port: ServerPort})
		if out == nil {
			return nil, outcome
		}
		return out.reply, outcome
	}
	if rep, _ := send(packet(t, dhcpv4.MessageTypeRequest, knownMAC, requested(knownIP), serverID("10.99.0.1"))); rep == nil || rep.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("first request: %v, want an ACK", rep)
	}
	decline := packet(t, dhcpv4.MessageTypeDecline, knownMAC, requested(knownIP), serverID("10.99.0.1"))
	if rep, outcome := send(decline); rep != nil || outcome != OutcomeIgnored {
		t.Errorf("spoofed decline: reply %v, outcome %s; want no reply, %s", rep, outcome, OutcomeIgnored)
	}
	// The same DECLINE from a stranger naming the reserved address.
	stranger := packet(t, dhcpv4.MessageTypeDecline, unknownMAC, requested(knownIP), serverID("10.99.0.1"))
	if _, outcome := send(stranger); outcome != OutcomeIgnored {
		t.Errorf("stranger's decline of a reservation: outcome %s, want %s", outcome, OutcomeIgnored)
	}
	if diff := cmp.Diff([]string{knownMAC + " " + knownIP}, leases.bound()); diff != "" {
		t.Errorf("bound leases after the declines (-want +got):\n%s", diff)
	}
	offer, _ := send(discover(t, knownMAC))
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer || offer.YourIPAddr.String() != knownIP {
		t.Errorf("discover after the decline: %v, want an OFFER of %s", offer, knownIP)
	}
	ack, _ := send(packet(t, dhcpv4.MessageTypeRequest, knownMAC, requested(knownIP), serverID("10.99.0.1")))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.YourIPAddr.String() != knownIP {
		t.Errorf("request after the decline: %v, want an ACK of %s", ack, knownIP)
	}
	want := []string{
		"request 10.99.0.10 known=true", "ack 10.99.0.10 known=true",
		"decline 10.99.0.10 known=true", "decline 10.99.0.10 known=false",
		"discover - known=true", "offer 10.99.0.10 known=true",
		"request 10.99.0.10 known=true", "ack 10.99.0.10 known=true",
	}
	if diff := cmp.Diff(want, rec.summary()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// The same over real sockets: the server in one namespace, the machine in
// another, the spoofed DECLINE sent from the machine's segment.
func TestSpoofedDeclineOverTheWire(t *testing.T) {
	leases := newMemLeases(nil)
	rec := &memRecorder{}
	s := &Server{Iface: srvIf, ServerIP: serverIP, BootURL: "http://10.99.0.1:8080/", Plan: testPlan(), Leases: leases, Recorder: rec}
	l := newLab(t)
	l.serve(t, s, ServerPort)
	client := udpIn(t, l.cli, cliIf, "0.0.0.0:68")
	ask := func(p *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		t.Helper()
		rep, _ := roundTrip(t, client, "255.255.255.255:67", p, time.Second)
		return rep
	}
	ackOf := func(step string) {
		t.Helper()
		rep := ask(packet(t, dhcpv4.MessageTypeRequest, knownMAC, requested(knownIP), serverID("10.99.0.1"), xidFor(len(step))))
		if rep == nil || rep.MessageType() != dhcpv4.MessageTypeAck || rep.YourIPAddr.String() != knownIP {
			t.Fatalf("%s: %v, want an ACK of %s", step, rep, knownIP)
		}
	}
	ackOf("before")
	decline := packet(t, dhcpv4.MessageTypeDecline, knownMAC, requested(knownIP), serverID("10.99.0.1"))
	if _, err := client.WriteTo(decline.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: ServerPort}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(2*time.Second, func() bool {
		for _, e := range rec.summary() {
			if e == "decline 10.99.0.10 known=true" {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("the decline was not recorded: %v", rec.summary())
	}
	if offer := ask(discover(t, knownMAC, xidFor(7))); offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Errorf("discover after the decline: %v, want an OFFER", offer)
	}
	ackOf("after the decline")
}
