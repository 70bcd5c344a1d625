package dhcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/undercloud/undercloud/event"
)

func TestDestination(t *testing.T) {
	type want struct {
		Dst       string
		Broadcast bool
	}
	tests := map[string]struct {
		mods  []dhcpv4.Modifier
		reply dhcpv4.MessageType
		peer  string
		port  int
		want  want
	}{
		"client without address: broadcast": {
			reply: dhcpv4.MessageTypeOffer, peer: "0.0.0.0:68", port: ServerPort,
			want: want{"255.255.255.255:68", true},
		},
		"relayed: to the relay's server port": {
			mods:  []dhcpv4.Modifier{relayed("10.99.4.1"), ciaddr("10.99.4.50")},
			reply: dhcpv4.MessageTypeAck, peer: "10.99.4.1:67", port: ServerPort,
			want: want{"10.99.4.1:67", false},
		},
		"relayed NAK: to the relay too": {
			mods:  []dhcpv4.Modifier{relayed("10.99.4.1")},
			reply: dhcpv4.MessageTypeNak, peer: "10.99.4.1:67", port: ServerPort,
			want: want{"10.99.4.1:67", false},
		},
		"NAK to a client with an address: broadcast": {
			mods:  []dhcpv4.Modifier{ciaddr("10.99.0.50")},
			reply: dhcpv4.MessageTypeNak, peer: "10.99.0.50:68", port: ServerPort,
			want: want{"255.255.255.255:68", true},
		},
		"client with an address: unicast to ciaddr": {
			mods:  []dhcpv4.Modifier{ciaddr("10.99.0.50")},
			reply: dhcpv4.MessageTypeAck, peer: "10.99.0.50:68", port: ServerPort,
			want: want{"10.99.0.50:68", false},
		},
		"proxy port: back to the sender": {
			mods:  []dhcpv4.Modifier{ciaddr("10.99.0.50")},
			reply: dhcpv4.MessageTypeAck, peer: "10.99.0.50:4011", port: ProxyPort,
			want: want{"10.99.0.50:4011", false},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req := packet(t, dhcpv4.MessageTypeRequest, unknownMAC, tc.mods...)
			rep := reply(req, answer{kind: tc.reply}, serverIP, bootConfig{})
			dst, bcast := destination(req, rep, netip.MustParseAddrPort(tc.peer), tc.port)
			if diff := cmp.Diff(tc.want, want{dst.String(), bcast}); diff != "" {
				t.Errorf("destination (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReplyLongBootURLGoesToOption67(t *testing.T) {
	// The BOOTP file field holds 127 bytes; a longer URL must not be cut.
	url := "http://provisioning.example:8080/" + strings.Repeat("x", 120)
	req := discover(t, unknownMAC, ipxeClass())
	rep := reply(req, answer{kind: dhcpv4.MessageTypeOffer, boot: Classify(req)}, serverIP, bootConfig{bootURL: url})
	if got, want := rep.BootFileNameOption(), url+"/boot.ipxe"; got != want {
		t.Errorf("option 67 = %q, want %q", got, want)
	}
	back, err := dhcpv4.FromBytes(rep.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := back.BootFileNameOption(); got != url+"/boot.ipxe" {
		t.Errorf("option 67 after encoding = %q", got)
	}
}

func TestReplyEchoesPXEMachineID(t *testing.T) {
	id := append([]byte{0}, make([]byte, 16)...)
	id[16] = 7
	req := discover(t, unknownMAC, arch(iana.INTEL_X86PC), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, id))
	rep := reply(req, answer{kind: dhcpv4.MessageTypeOffer, boot: Classify(req)}, serverIP, bootConfig{})
	if diff := cmp.Diff(id, rep.GetOneOption(dhcpv4.OptionClientMachineIdentifier)); diff != "" {
		t.Errorf("option 97 (-want +got):\n%s", diff)
	}
}

func TestMemLeasesNeverDuplicate(t *testing.T) {
	// The in-memory store stands for the inventory in every test: it must
	// itself be right. 200 machines race for 150 addresses.
	m := newMemLeases(nil)
	sn := Subnet{Prefix: netip.MustParsePrefix("10.99.0.0/24"),
		Range: &Range{First: netip.MustParseAddr("10.99.0.50"), Last: netip.MustParseAddr("10.99.0.199")}}
	var (
		mu   sync.Mutex
		got  = map[netip.Addr]string{}
		full int
		wg   sync.WaitGroup
	)
	for i := range 200 {
		wg.Go(func() {
			mac := net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)}
			ip, err := m.Offer(context.Background(), mac, sn, netip.MustParseAddr("10.99.0.60"))
			if errors.Is(err, ErrRangeFull) {
				mu.Lock()
				full++
				mu.Unlock()
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			again, err := m.Offer(context.Background(), mac, sn, netip.Addr{})
			if err != nil || again != ip {
				t.Errorf("second offer to %s = %s, %v; want %s", mac, again, err, ip)
			}
			if _, err := m.Commit(context.Background(), Lease{MAC: mac, IP: ip, Expires: time.Now().Add(time.Hour)}); err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if other, dup := got[ip]; dup {
				t.Errorf("%s given to %s and %s", ip, other, mac)
			}
			got[ip] = mac.String()
		})
	}
	wg.Wait()
	if len(got) != 150 || full != 50 {
		t.Errorf("%d addresses given, %d refused; want 150 and 50", len(got), full)
	}
	_, err := m.Commit(context.Background(), Lease{MAC: net.HardwareAddr{2, 9, 9, 9, 9, 9}, IP: netip.MustParseAddr("10.99.0.60"), Expires: time.Now().Add(time.Hour)})
	if !errors.Is(err, ErrConflict) {
		t.Errorf("commit of a held address: err = %v, want ErrConflict", err)
	}
}

func TestKindEvent(t *testing.T) {
	want := map[Kind]event.Kind{
		KindDiscover: event.DHCPDiscover, KindOffer: event.DHCPOffer, KindRequest: event.DHCPRequest,
		KindAck: event.DHCPAck, KindNak: event.DHCPNak, KindRelease: event.DHCPRelease,
		KindDecline: event.DHCPDecline, KindInform: event.DHCPInform, KindOther: "",
	}
	for k, w := range want {
		if got := k.Event(); got != w {
			t.Errorf("%s.Event() = %q, want %q", k, got, w)
		}
	}
}
