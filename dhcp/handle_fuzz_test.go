package dhcp

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzHandle feeds raw datagrams to the packet path (the decoder, then
// handle, without serveOne's recover, so that a panic fails the fuzzer),
// on either port, from memory or not, against the test plan and the
// in-memory lease store. Whatever the bytes, a reply is a well-formed
// BOOTREPLY to the same transaction that decodes again; an address given
// is in the plan's subnet for that segment; and a DECLINE never takes a
// reserved address.
func FuzzHandle(f *testing.F) {
	seeds := []*dhcpv4.DHCPv4{
		discover(f, knownMAC, arch(iana.INTEL_X86PC), vendor("PXEClient:Arch:00000:UNDI:002001")),
		discover(f, unknownMAC, arch(iana.EFI_X86_64), ipxeClass()),
		discover(f, unknownMAC, relayed("10.99.4.1"), dhcpv4.WithGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 3, 'p', '0', '1'})),
		discover(f, unknownMAC, arch(iana.EFI_X86_64_HTTP), vendor("HTTPClient:Arch:00016:UNDI:003001"), relayed("10.99.9.1")),
		packet(f, dhcpv4.MessageTypeRequest, knownMAC, requested(knownIP), serverID("10.99.0.1")),
		packet(f, dhcpv4.MessageTypeRequest, unknownMAC, ciaddr("10.99.0.150")),
		packet(f, dhcpv4.MessageTypeRequest, unknownMAC, requested("10.99.0.10")),
		packet(f, dhcpv4.MessageTypeRelease, unknownMAC, ciaddr("10.99.0.150"), serverID("10.99.0.1")),
		packet(f, dhcpv4.MessageTypeDecline, knownMAC, requested(knownIP), serverID("10.99.0.1")),
		packet(f, dhcpv4.MessageTypeDecline, unknownMAC, requested("10.99.0.150"), serverID("10.99.0.1")),
		packet(f, dhcpv4.MessageTypeInform, unknownMAC, ciaddr("10.99.0.42")),
	}
	for i, p := range seeds {
		f.Add(p.ToBytes(), uint8(i))
	}
	f.Add([]byte{}, uint8(0))
	f.Add(make([]byte, 240), uint8(1))

	f.Fuzz(func(t *testing.T, data []byte, how uint8) {
		req, err := dhcpv4.FromBytes(data)
		if err != nil {
			return // dropped as malformed by serveOne
		}
		leases := newMemLeases(func() time.Time { return testNow })
		commit(leases, knownMAC, knownIP)       // the known machine holds its reservation
		commit(leases, otherMAC, "10.99.0.150") // and a discovered one a dynamic address
		s := testServer(leases, &memRecorder{})
		in := inbound{req: req, peer: netip.MustParseAddrPort("10.99.4.1:67"), port: ServerPort, fromMemory: how&2 != 0}
		if how&1 != 0 {
			in.port = ProxyPort
		}
		xid := req.TransactionID
		out, kind, outcome := s.handle(context.Background(), in)

		if (out != nil) != (outcome == OutcomeReply || outcome == OutcomeNak) {
			t.Fatalf("reply %v with outcome %s", out, outcome)
		}
		if kind == KindDecline || kind == KindRelease {
			if out != nil {
				t.Fatalf("a %s was answered: %v", kind, out.reply)
			}
		}
		if got := leases.bound(); len(got) == 0 || got[0] != knownMAC+" "+knownIP {
			t.Fatalf("the known machine lost its reservation: bound %v", got)
		}
		if out == nil {
			return
		}
		rep := out.reply
		if rep.OpCode != dhcpv4.OpcodeBootReply || rep.TransactionID != xid {
			t.Fatalf("reply op %s xid %s to xid %s", rep.OpCode, rep.TransactionID, xid)
		}
		back, err := dhcpv4.FromBytes(rep.ToBytes())
		if err != nil {
			t.Fatalf("reply does not decode: %v\n%s", err, rep)
		}
		if back.MessageType() != rep.MessageType() || !back.YourIPAddr.Equal(rep.YourIPAddr) {
			t.Fatalf("reply changed through its bytes: %s\n%s", rep, back)
		}
		if yi := addr(rep.YourIPAddr); yi.IsValid() {
			if rep.MessageType() == dhcpv4.MessageTypeNak {
				t.Fatalf("a NAK gives %s", yi)
			}
			inPlan := false
			for _, sn := range testPlan().subnets {
				inPlan = inPlan || (!sn.Proxy && sn.Prefix.Contains(yi))
			}
			if !inPlan || yi == serverIP || yi.Is4() && yi.As4()[3] == 0 {
				t.Fatalf("reply gives %s, outside the plan's subnets", yi)
			}
		}
	})
}
