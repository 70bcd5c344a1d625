package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/sys/unix"
)

// relay is the load generator's DHCP side: it plays the relay agent of the
// machines' subnet (RFC 2131 4.1, giaddr) and the machines' iPXE behind it.
// One socket bound to giaddr:67 carries every exchange; replies, which the
// server unicasts to giaddr:67, are handed to the machine by xid.
type relay struct {
	conn   *net.UDPConn
	server *net.UDPAddr
	giaddr net.IP

	mu      sync.Mutex
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
}

// newRelay binds giaddr:67: giaddr must be an address of this namespace.
func newRelay(giaddr, server string) (*relay, error) {
	gi := net.ParseIP(giaddr).To4()
	if gi == nil {
		return nil, fmt.Errorf("relay address %q: not IPv4", giaddr)
	}
	srv, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		return nil, fmt.Errorf("DHCP server %q: %w", server, err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: gi, Port: 67})
	if err != nil {
		return nil, fmt.Errorf("relay socket: %w", err)
	}
	// A rack powering on answers in a burst: thousands of offers at once.
	// SO_RCVBUFFORCE (root) goes past net.core.rmem_max, which would
	// quietly cap SetReadBuffer at about 200 KiB.
	if rc, err := conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
				_ = conn.SetReadBuffer(8 << 20)
			}
		})
	}
	r := &relay{conn: conn, server: srv, giaddr: gi, waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}}
	go r.read()
	return r, nil
}

func (r *relay) Close() error { return r.conn.Close() }

// read hands every reply to the exchange waiting for its xid; replies nobody
// waits for (a retransmission answered twice) are dropped.
func (r *relay) read() {
	buf := make([]byte, 1500)
	for {
		n, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || p.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		r.mu.Lock()
		ch := r.waiting[p.TransactionID]
		r.mu.Unlock()
		if ch != nil {
			select {
			case ch <- p:
			default:
			}
		}
	}
}

// lease is what a machine's DHCP exchange gave it.
type lease struct {
	IP       net.IP
	BootFile string
	Server   net.IP
	Sends    int // DHCP packets sent, retransmissions included
}

// exchange runs DISCOVER/OFFER/REQUEST/ACK for machine m as iPXE sends them:
// option 93 (client architecture), 77 (user class "iPXE", raw as iPXE sends
// it), 97 (UUID), 60 (PXEClient vendor class) and 175 (iPXE's features),
// relayed with giaddr and hops 1. Each step is retransmitted after 1, 2, 4
// and 8 s without an answer, as iPXE's DHCP does roughly.
func (r *relay) exchange(ctx context.Context, m machineSpec) (l lease, err error) {
	mac, err := net.ParseMAC(m.MAC)
	if err != nil {
		return lease{}, err
	}
	uuid, err := uuidOption(m.UUID)
	if err != nil {
		return lease{}, err
	}
	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return lease{}, err
	}
	ch := make(chan *dhcpv4.DHCPv4, 4)
	r.mu.Lock()
	r.waiting[xid] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiting, xid)
		r.mu.Unlock()
	}()
	common := []dhcpv4.Modifier{
		dhcpv4.WithTransactionID(xid),
		dhcpv4.WithHwAddr(mac),
		dhcpv4.WithRelay(r.giaddr),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, byte(iana.EFI_X86_64)}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 3, 0}),
		dhcpv4.WithGeneric(dhcpv4.OptionClassIdentifier, []byte("PXEClient:Arch:00007:UNDI:003010")),
		dhcpv4.WithUserClass("iPXE", false),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, uuid),
		// 175: iPXE's encapsulated options: HTTP (19), bzImage (24), EFI (36) supported.
		dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{19, 1, 1, 24, 1, 1, 36, 1, 1}),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionBootfileName, dhcpv4.OptionTFTPServerName, dhcpv4.GenericOptionCode(175)),
	}
	discover, err := dhcpv4.New(append(common, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))...)
	if err != nil {
		return lease{}, err
	}
	offer, err := r.roundTrip(ctx, discover, ch, dhcpv4.MessageTypeOffer, &l.Sends)
	if err != nil {
		return lease{}, fmt.Errorf("discover: %w", err)
	}
	request, err := dhcpv4.New(append(common,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
	)...)
	if err != nil {
		return lease{}, err
	}
	ack, err := r.roundTrip(ctx, request, ch, dhcpv4.MessageTypeAck, &l.Sends)
	if err != nil {
		return lease{}, fmt.Errorf("request %s: %w", offer.YourIPAddr, err)
	}
	l.IP, l.BootFile, l.Server = ack.YourIPAddr, ack.BootFileNameOption(), ack.ServerIPAddr
	if l.BootFile == "" {
		l.BootFile = ack.BootFileName
	}
	return l, nil
}

// roundTrip sends p to the server and waits for a reply of type want,
// retransmitting with back-off. A NAK fails at once; a reply of another
// type (a late OFFER answering a retransmitted DISCOVER while the REQUEST
// waits) is ignored, as a client in that state does.
func (r *relay) roundTrip(ctx context.Context, p *dhcpv4.DHCPv4, ch chan *dhcpv4.DHCPv4, want dhcpv4.MessageType, sends *int) (*dhcpv4.DHCPv4, error) {
	wire := p.ToBytes()
	for wait := time.Second; wait <= 8*time.Second; wait *= 2 {
		if _, err := r.conn.WriteToUDP(wire, r.server); err != nil {
			return nil, err
		}
		*sends++
		t := time.NewTimer(wait)
	waiting:
		for {
			select {
			case reply := <-ch:
				switch mt := reply.MessageType(); mt {
				case want:
					t.Stop()
					return reply, nil
				case dhcpv4.MessageTypeNak:
					t.Stop()
					return nil, fmt.Errorf("got %s, want %s (%s)", mt, want, reply.Message())
				}
			case <-t.C:
				break waiting
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
		}
	}
	return nil, errors.New("no answer after 4 tries (15 s)")
}

// uuidOption is option 97: type 0 and the 16 bytes of the SMBIOS UUID.
func uuidOption(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		return nil, fmt.Errorf("UUID %q: want 32 hex digits", s)
	}
	return append([]byte{0}, b...), nil
}
