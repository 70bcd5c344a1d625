package dhcp

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

func TestHandle(t *testing.T) {
	bcast := "255.255.255.255:68"
	tests := map[string]struct {
		setup      func(*memLeases)
		req        func(t testing.TB) *dhcpv4.DHCPv4
		port       int    // 0 = ServerPort
		peer       string // "" = 0.0.0.0:68
		want       *view
		wantKind   Kind
		wantOut    Outcome
		wantEvents []string
		wantBound  []string
	}{
		"known BIOS machine gets its reserved address and boot file": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return discover(t, knownMAC, arch(iana.INTEL_X86PC), vendor("PXEClient:Arch:00000:UNDI:002001"))
			},
			want: &view{Dst: bcast, Broadcast: true, YIAddr: knownIP, CIAddr: "0.0.0.0", SIAddr: "10.99.0.1", GIAddr: "0.0.0.0",
				File: "undionly.kpxe", Options: labOptions("OFFER", merge(pxeBIOS, map[uint8]string{12: "node-a"}))},
			wantKind: KindDiscover, wantOut: OutcomeReply,
			wantEvents: []string{"discover - known=true", "offer 10.99.0.10 known=true"},
		},
		"unknown UEFI machine gets a dynamic address and is discovered": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 { return discover(t, unknownMAC, arch(iana.EFI_X86_64)) },
			want: &view{Dst: bcast, Broadcast: true, YIAddr: "10.99.0.100", CIAddr: "0.0.0.0", SIAddr: "10.99.0.1", GIAddr: "0.0.0.0",
				File: "ipxe.efi", Options: labOptions("OFFER", pxeBIOS)},
			wantKind: KindDiscover, wantOut: OutcomeReply,
			wantEvents: []string{"discover - known=false", "offer 10.99.0.100 known=false"},
		},
		"unknown machine is offered its previous address": {
			setup: func(m *memLeases) {
				commit(m, unknownMAC, "10.99.0.150")
			},
			req: func(t testing.TB) *dhcpv4.DHCPv4 { return discover(t, unknownMAC) },
			want: &view{Dst: bcast, Broadcast: true, YIAddr: "10.99.0.150", CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", GIAddr: "0.0.0.0",
				Options: labOptions("OFFER", nil)},
			wantKind: KindDiscover, wantOut: OutcomeReply,
			wantEvents: []string{"discover - known=false", "offer 10.99.0.150 known=false"},
			wantBound:  []string{unknownMAC + " 10.99.0.150"},
		},
		"plain DHCP client gets an address only": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 { return discover(t, knownMAC, vendor("udhcp 1.35.0")) },
			want: &view{Dst: bcast, Broadcast: true, YIAddr: knownIP, CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", GIAddr: "0.0.0.0",
				Options: labOptions("OFFER", map[uint8]string{12: "node-a"})},
			wantKind: KindDiscover, wantOut: OutcomeReply,
			wantEvents: []string{"discover - known=true", "offer 10.99.0.10 known=true"},
		},
		"iPXE is chained to the boot script and told not to wait for proxyDHCP": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return discover(t, knownMAC, arch(iana.EFI_X86_64), ipxeClass(),
					dhcpv4.WithRequestedOptions(dhcpv4.OptionBootfileName))
			},
			want: &view{Dst: bcast, Broadcast: true, YIAddr: knownIP, CIAddr: "0.0.0.0", SIAddr: "10.99.0.1", GIAddr: "0.0.0.0",
				File:    "http://10.99.0.1:8080/boot.ipxe",
				Options: labOptions("OFFER", map[uint8]string{12: "node-a", 175: "b00101", 67: "http://10.99.0.1:8080/boot.ipxe"})},
			wantKind: KindDiscover, wantOut: OutcomeReply,
			wantEvents: []string{"discover - known=true", "offer 10.99.0.10 known=true"},
		},
		"UEFI HTTP boot gets a URL and the HTTPClient vendor class": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return discover(t, knownMAC, arch(iana.EFI_X86_64_HTTP), vendor("HTTPClient:Arch:00016:UNDI:003001"))
			},
			want: &view{Dst: bcast, Broadcast: true, YIAddr: knownIP, CIAddr: "0.0.0.0", SIAddr: "10.99.0.1", GIAddr: "0.0.0.0",
				File:    "http://10.99.0.1:8080/firmware/ipxe.efi",
				Options: labOptions("OFFER", map[uint8]string{12: "node-a", 60: "HTTPClient"})},
			wantKind: KindDiscover, wantOut: OutcomeReply,
			wantEvents: []string{"discover - known=true", "offer 10.99.0.10 known=true"},
		},
		"unknown architecture gets an address but no boot file": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return discover(t, knownMAC, arch(iana.EFI_IA32), vendor("PXEClient"))
			},
			want: &view{Dst: bcast, Broadcast: true, YIAddr: knownIP, CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", GIAddr: "0.0.0.0",
				Options: labOptions("OFFER", map[uint8]string{12: "node-a"})},
			wantKind: KindDiscover, wantOut: OutcomeReply,
			wantEvents: []string{"discover - known=true", "offer 10.99.0.10 known=true"},
		},
		"relayed request is answered to the relay with its subnet's router and mask": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return discover(t, unknownMAC, arch(iana.INTEL_X86PC), relayed("10.99.4.1"),
					dhcpv4.WithGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 3, 'p', '0', '1'}))
			},
			peer: "10.99.4.1:67",
			want: &view{Dst: "10.99.4.1:67", YIAddr: "10.99.4.10", CIAddr: "0.0.0.0", SIAddr: "10.99.0.1", GIAddr: "10.99.4.1",
				File: "undionly.kpxe",
				Options: merge(pxeBIOS, map[uint8]string{53: "OFFER", 54: "10.99.0.1", 1: "255.255.252.0", 3: "10.99.4.1",
					51: "600", 58: "300", 59: "525", 82: "0103703031"})},
			wantKind: KindDiscover, wantOut: OutcomeReply,
			wantEvents: []string{"discover - known=false", "offer 10.99.4.10 known=false"},
		},
		"relay from an unknown subnet is ignored": {
			req:      func(t testing.TB) *dhcpv4.DHCPv4 { return discover(t, unknownMAC, relayed("10.98.0.1")) },
			wantKind: KindDiscover, wantOut: OutcomeIgnored,
		},
		"unknown machine on a segment without dynamic range gets nothing but is recorded": {
			req:        func(t testing.TB) *dhcpv4.DHCPv4 { return discover(t, unknownMAC, relayed("10.99.8.1")) },
			wantKind:   KindDiscover,
			wantOut:    OutcomeIgnored,
			wantEvents: []string{"discover - known=false"},
		},
		"known machine whose address is on another segment gets nothing": {
			req:        func(t testing.TB) *dhcpv4.DHCPv4 { return discover(t, remoteMAC) },
			wantKind:   KindDiscover,
			wantOut:    OutcomeIgnored,
			wantEvents: []string{"discover - known=true"},
		},
		"proxy mode: PXE client gets boot information and no address": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return discover(t, unknownMAC, arch(iana.EFI_X86_64), vendor("PXEClient:Arch:00007"), relayed("10.99.9.1"))
			},
			peer: "10.99.9.1:67",
			want: &view{Dst: "10.99.9.1:67", YIAddr: "0.0.0.0", CIAddr: "0.0.0.0", SIAddr: "10.99.0.1", GIAddr: "10.99.9.1",
				File: "ipxe.efi", SName: "10.99.0.1", Options: merge(pxeBIOS, map[uint8]string{53: "OFFER", 54: "10.99.0.1"})},
			wantKind: KindDiscover, wantOut: OutcomeReply,
			wantEvents: []string{"discover - known=false", "offer - known=false"},
		},
		"proxy mode: iPXE gets the script and the PXEClient class": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return discover(t, unknownMAC, arch(iana.INTEL_X86PC), ipxeClass(), relayed("10.99.9.1"))
			},
			want: &view{Dst: "10.99.9.1:67", YIAddr: "0.0.0.0", CIAddr: "0.0.0.0", SIAddr: "10.99.0.1", GIAddr: "10.99.9.1",
				File: "http://10.99.0.1:8080/boot.ipxe", Options: map[uint8]string{53: "OFFER", 54: "10.99.0.1", 60: "PXEClient", 175: "b00101"}},
			wantKind: KindDiscover, wantOut: OutcomeReply,
			wantEvents: []string{"discover - known=false", "offer - known=false"},
		},
		"proxy mode: plain DHCP client is ignored": {
			req:      func(t testing.TB) *dhcpv4.DHCPv4 { return discover(t, unknownMAC, relayed("10.99.9.1")) },
			wantKind: KindDiscover, wantOut: OutcomeIgnored,
		},
		"proxy mode: request for the network's DHCP server is ignored": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRequest, unknownMAC, arch(iana.EFI_X86_64), relayed("10.99.9.1"), requested("10.99.9.50"))
			},
			wantKind: KindRequest, wantOut: OutcomeIgnored,
		},
		"proxy port: PXE REQUEST is acknowledged to its sender with the boot file": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRequest, unknownMAC, arch(iana.EFI_X86_64), ciaddr("10.99.9.50"))
			},
			port: ProxyPort, peer: "10.99.9.50:68",
			want: &view{Dst: "10.99.9.50:68", YIAddr: "0.0.0.0", CIAddr: "10.99.9.50", SIAddr: "10.99.0.1", GIAddr: "0.0.0.0",
				File: "ipxe.efi", SName: "10.99.0.1", Options: merge(pxeBIOS, map[uint8]string{53: "ACK", 54: "10.99.0.1"})},
			wantKind: KindRequest, wantOut: OutcomeReply,
			wantEvents: []string{"request - known=false", "ack - known=false"},
		},
		"proxy port: DISCOVER is ignored": {
			req:      func(t testing.TB) *dhcpv4.DHCPv4 { return discover(t, unknownMAC, arch(iana.EFI_X86_64)) },
			port:     ProxyPort,
			peer:     "10.99.0.50:68",
			wantKind: KindDiscover, wantOut: OutcomeIgnored,
		},
		"known machine requesting its address is acknowledged and its lease committed": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRequest, knownMAC, serverID("10.99.0.1"), requested(knownIP))
			},
			want: &view{Dst: bcast, Broadcast: true, YIAddr: knownIP, CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", GIAddr: "0.0.0.0",
				Options: labOptions("ACK", map[uint8]string{12: "node-a"})},
			wantKind: KindRequest, wantOut: OutcomeReply,
			wantEvents: []string{"request 10.99.0.10 known=true", "ack 10.99.0.10 known=true"},
			wantBound:  []string{knownMAC + " " + knownIP},
		},
		"known machine asking for another address gets a NAK": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRequest, knownMAC, requested("10.99.0.77"))
			},
			want: &view{Dst: bcast, Broadcast: true, YIAddr: "0.0.0.0", CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", GIAddr: "0.0.0.0",
				Options: map[uint8]string{53: "NAK", 54: "10.99.0.1", 56: "requested address is not the one for this machine"}},
			wantKind: KindRequest, wantOut: OutcomeNak,
			wantEvents: []string{"request 10.99.0.77 known=true", "nak 10.99.0.77 known=true"},
		},
		"request naming another server is ignored": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRequest, knownMAC, serverID("10.99.0.2"), requested(knownIP))
			},
			wantKind: KindRequest, wantOut: OutcomeIgnored,
		},
		"unknown machine requesting an address another machine holds gets a NAK": {
			setup: func(m *memLeases) { commit(m, otherMAC, "10.99.0.120") },
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRequest, unknownMAC, requested("10.99.0.120"))
			},
			want: &view{Dst: bcast, Broadcast: true, YIAddr: "0.0.0.0", CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", GIAddr: "0.0.0.0",
				Options: map[uint8]string{53: "NAK", 54: "10.99.0.1", 56: "requested address is not the one for this machine"}},
			wantKind: KindRequest, wantOut: OutcomeNak,
			wantEvents: []string{"request 10.99.0.120 known=false", "nak 10.99.0.120 known=false"},
			wantBound:  []string{otherMAC + " 10.99.0.120"},
		},
		"unknown machine rebooting with a free address keeps it": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRequest, unknownMAC, requested("10.99.0.130"))
			},
			want: &view{Dst: bcast, Broadcast: true, YIAddr: "10.99.0.130", CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", GIAddr: "0.0.0.0",
				Options: labOptions("ACK", nil)},
			wantKind: KindRequest, wantOut: OutcomeReply,
			wantEvents: []string{"request 10.99.0.130 known=false", "ack 10.99.0.130 known=false"},
			wantBound:  []string{unknownMAC + " 10.99.0.130"},
		},
		"request for an address of another network gets a NAK": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRequest, unknownMAC, requested("192.168.1.5"))
			},
			want: &view{Dst: bcast, Broadcast: true, YIAddr: "0.0.0.0", CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", GIAddr: "0.0.0.0",
				Options: map[uint8]string{53: "NAK", 54: "10.99.0.1", 56: "requested address is not on this network"}},
			wantKind: KindRequest, wantOut: OutcomeNak,
			wantEvents: []string{"request 192.168.1.5 known=false", "nak 192.168.1.5 known=false"},
		},
		"relayed NAK goes to the relay with the broadcast bit": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRequest, remoteMAC, relayed("10.99.4.1"), requested("10.99.4.99"))
			},
			want: &view{Dst: "10.99.4.1:67", YIAddr: "0.0.0.0", CIAddr: "0.0.0.0", SIAddr: "0.0.0.0", GIAddr: "10.99.4.1", Flags: 0x8000,
				Options: map[uint8]string{53: "NAK", 54: "10.99.0.1", 56: "requested address is not the one for this machine"}},
			wantKind: KindRequest, wantOut: OutcomeNak,
			wantEvents: []string{"request 10.99.4.99 known=true", "nak 10.99.4.99 known=true"},
		},
		"renewal is unicast to the client": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRequest, knownMAC, ciaddr(knownIP))
			},
			peer: knownIP + ":68",
			want: &view{Dst: knownIP + ":68", YIAddr: knownIP, CIAddr: knownIP, SIAddr: "0.0.0.0", GIAddr: "0.0.0.0",
				Options: labOptions("ACK", map[uint8]string{12: "node-a"})},
			wantKind: KindRequest, wantOut: OutcomeReply,
			wantEvents: []string{"request 10.99.0.10 known=true", "ack 10.99.0.10 known=true"},
			wantBound:  []string{knownMAC + " " + knownIP},
		},
		"inform is answered with configuration only": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeInform, unknownMAC, ciaddr("10.99.0.42"))
			},
			peer: "10.99.0.42:68",
			want: &view{Dst: "10.99.0.42:68", YIAddr: "0.0.0.0", CIAddr: "10.99.0.42", SIAddr: "0.0.0.0", GIAddr: "0.0.0.0",
				Options: map[uint8]string{53: "ACK", 54: "10.99.0.1", 1: "255.255.255.0", 3: "10.99.0.1", 6: "10.99.0.1", 15: "lab.example"}},
			wantKind: KindInform, wantOut: OutcomeReply,
			wantEvents: []string{"inform 10.99.0.42 known=false", "ack 10.99.0.42 known=false"},
		},
		"release frees the lease": {
			setup: func(m *memLeases) { commit(m, unknownMAC, "10.99.0.150") },
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeRelease, unknownMAC, ciaddr("10.99.0.150"), serverID("10.99.0.1"))
			},
			wantKind: KindRelease, wantOut: OutcomeDone,
			wantEvents: []string{"release 10.99.0.150 known=false"},
		},
		"decline takes the address out of use": {
			setup: func(m *memLeases) { commit(m, unknownMAC, "10.99.0.150") },
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				return packet(t, dhcpv4.MessageTypeDecline, unknownMAC, requested("10.99.0.150"), serverID("10.99.0.1"))
			},
			wantKind: KindDecline, wantOut: OutcomeDone,
			wantEvents: []string{"decline 10.99.0.150 known=false"},
		},
		"BOOTP (no message type) is ignored": {
			req: func(t testing.TB) *dhcpv4.DHCPv4 {
				p := discover(t, unknownMAC)
				p.Options.Del(dhcpv4.OptionDHCPMessageType)
				return p
			},
			wantKind: KindOther, wantOut: OutcomeIgnored,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			leases := newMemLeases(func() time.Time { return testNow })
			if tc.setup != nil {
				tc.setup(leases)
			}
			rec := &memRecorder{}
			s := testServer(leases, rec)
			in := inbound{req: tc.req(t), peer: netip.MustParseAddrPort("0.0.0.0:68"), port: ServerPort}
			if tc.port != 0 {
				in.port = tc.port
			}
			if tc.peer != "" {
				in.peer = netip.MustParseAddrPort(tc.peer)
			}
			out, kind, outcome := s.handle(context.Background(), in)
			if diff := cmp.Diff(tc.want, viewOf(out)); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
			if kind != tc.wantKind || outcome != tc.wantOut {
				t.Errorf("kind, outcome = %s, %s; want %s, %s", kind, outcome, tc.wantKind, tc.wantOut)
			}
			if diff := cmp.Diff(tc.wantEvents, rec.summary()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantBound, leases.bound()); diff != "" {
				t.Errorf("bound leases (-want +got):\n%s", diff)
			}
		})
	}
}

// cachingLeases keeps an existing lease instead of extending it, as a store
// with lease caching does: Commit answers with the lease's remaining time.
type cachingLeases struct {
	*memLeases
	expires time.Time
}

func (c cachingLeases) Commit(ctx context.Context, l Lease) (time.Time, error) {
	if _, err := c.memLeases.Commit(ctx, l); err != nil {
		return time.Time{}, err
	}
	return c.expires, nil
}

// An ACK never promises more than the store holds: with a cached lease
// that has 20 minutes left, option 51 says 20 minutes and T1/T2 follow.
func TestAckLeaseTimeFromStore(t *testing.T) {
	m := newMemLeases(func() time.Time { return testNow })
	s := testServer(m, &memRecorder{})
	s.Leases = cachingLeases{m, testNow.Add(20 * time.Minute)}
	req := packet(t, dhcpv4.MessageTypeRequest, knownMAC, requested(knownIP))
	out, _, outcome := s.handle(context.Background(), inbound{req: req, port: ServerPort})
	if outcome != OutcomeReply || out == nil || out.reply.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("no ACK: %v %v", outcome, out)
	}
	r := out.reply
	got := []time.Duration{r.IPAddressLeaseTime(0), r.IPAddressRenewalTime(0), r.IPAddressRebindingTime(0)}
	want := []time.Duration{20 * time.Minute, 10 * time.Minute, 20 * time.Minute * 7 / 8}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lease, renewal, rebinding times (-want +got):\n%s", diff)
	}
}
