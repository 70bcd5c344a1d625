package dhcp

import (
	"context"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// BenchmarkExchange measures the decision path of one DISCOVER and one
// REQUEST, from decoding to the encoded reply, without sockets.
func BenchmarkExchange(b *testing.B) {
	for _, tc := range []struct {
		name string
		mac  string
	}{{"known", knownMAC}, {"unknown", unknownMAC}} {
		b.Run(tc.name, func(b *testing.B) {
			leases := newMemLeases(nil)
			s := testServer(leases, &memRecorder{})
			s.Recorder = nil
			d := discover(b, tc.mac, arch(iana.EFI_X86_64), vendor("PXEClient:Arch:00007:UNDI:003016")).ToBytes()
			peer := netip.MustParseAddrPort("0.0.0.0:68")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				req, err := dhcpv4.FromBytes(d)
				if err != nil {
					b.Fatal(err)
				}
				offer, _, _ := s.handle(ctx, inbound{req: req, peer: peer, port: ServerPort})
				if offer == nil {
					b.Fatal("no offer")
				}
				_ = offer.reply.ToBytes()
				r := packet(b, dhcpv4.MessageTypeRequest, tc.mac, serverID("10.99.0.1"), requested(offer.reply.YourIPAddr.String()))
				ack, _, _ := s.handle(ctx, inbound{req: r, peer: peer, port: ServerPort})
				if ack == nil || ack.reply.MessageType() != dhcpv4.MessageTypeAck {
					b.Fatal("no ack")
				}
				_ = ack.reply.ToBytes()
			}
		})
	}
}

// BenchmarkClassify measures the firmware classification alone.
func BenchmarkClassify(b *testing.B) {
	req := discover(b, unknownMAC, arch(iana.INTEL_X86PC), vendor("PXEClient:Arch:00000:UNDI:002001"), ipxeClass())
	b.ReportAllocs()
	for b.Loop() {
		if Classify(req).Firmware != FirmwareIPXE {
			b.Fatal("misclassified")
		}
	}
}
