package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/sys/unix"
)

// udpIn opens a UDP socket inside ns, bound to laddr and, when iface is
// set, to that device; it is closed when the test ends.
func udpIn(t *testing.T, ns, iface, laddr string) *net.UDPConn {
	t.Helper()
	var conn net.PacketConn
	err := inNetns(ns, func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if iface != "" {
					serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface)
				}
			})
			return errors.Join(err, serr)
		}}
		var err error
		conn, err = lc.ListenPacket(context.Background(), "udp4", laddr)
		return err
	})
	if err != nil {
		t.Fatalf("client socket %s in %s: %v", laddr, ns, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.(*net.UDPConn)
}

// roundTrip sends req to dst and returns the first reply with its xid,
// resending twice if none comes; nil when no reply came at all.
func roundTrip(t *testing.T, conn *net.UDPConn, dst string, req *dhcpv4.DHCPv4, wait time.Duration) (*dhcpv4.DHCPv4, netip.AddrPort) {
	t.Helper()
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst))
	buf := make([]byte, maxPacket)
	for range 3 {
		if _, err := conn.WriteTo(req.ToBytes(), to); err != nil {
			t.Fatalf("send to %s: %v", dst, err)
		}
		deadline := time.Now().Add(wait)
		for {
			_ = conn.SetReadDeadline(deadline)
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatalf("read reply: %v", err)
			}
			rep, err := dhcpv4.FromBytes(buf[:n])
			if err == nil && rep.OpCode == dhcpv4.OpcodeBootReply && rep.TransactionID == req.TransactionID {
				return rep, from
			}
		}
	}
	return nil, netip.AddrPort{}
}

func xidFor(i int) dhcpv4.Modifier {
	return dhcpv4.WithTransactionID(dhcpv4.TransactionID{0x5e, 0x1a, byte(i >> 8), byte(i)})
}

// relayLab is a lab where the client namespace plays a DHCP relay: its
// address on the server's segment is 10.99.0.2, and it owns the router
// addresses of the relayed subnet 10.99.4.0/22 and of an unknown one.
func relayLab(t *testing.T, s *Server) *lab {
	l := newLab(t)
	l.ip(t, l.cli, "addr", "add", "10.99.0.2/24", "dev", cliIf)
	l.ip(t, l.cli, "addr", "add", "10.99.4.1/32", "dev", "lo")
	l.ip(t, l.cli, "addr", "add", "10.98.0.1/32", "dev", "lo")
	l.ip(t, l.srv, "route", "add", "10.99.4.0/22", "via", "10.99.0.2")
	l.ip(t, l.srv, "route", "add", "10.98.0.0/24", "via", "10.99.0.2")
	l.serve(t, s, ServerPort)
	return l
}

// TestRelay sends relayed requests, as a relay agent would, from the
// relay's address: they are answered to that address on port 67 with the
// relayed subnet's settings. Garbage and unknown relays get nothing.
func TestRelay(t *testing.T) {
	metrics := &memMetrics{}
	leases := newMemLeases(nil)
	s := &Server{Iface: srvIf, ServerIP: serverIP, Plan: testPlan(), Leases: leases, Metrics: metrics, Workers: 4}
	l := relayLab(t, s)
	relay := udpIn(t, l.cli, "", "10.99.4.1:67")

	// Malformed packets are dropped and counted, and the server lives on.
	garbage := udpIn(t, l.cli, "", "10.99.0.2:0")
	for _, p := range [][]byte{{}, {1, 2, 3}, make([]byte, 300), append(discover(t, unknownMAC).ToBytes()[:240], 53, 9)} {
		if _, err := garbage.WriteTo(p, &net.UDPAddr{IP: net.IPv4(10, 99, 0, 1), Port: ServerPort}); err != nil {
			t.Fatal(err)
		}
	}
	if !waitFor(5*time.Second, func() bool { return metrics.count("other/malformed") == 4 }) {
		t.Errorf("malformed packets counted: %d, want 4", metrics.count("other/malformed"))
	}

	req := discover(t, unknownMAC, arch(iana.INTEL_X86PC), relayed("10.99.4.1"), func(d *dhcpv4.DHCPv4) { d.HopCount = 1 })
	offer, from := roundTrip(t, relay, "10.99.0.1:67", req, time.Second)
	if offer == nil {
		t.Fatal("no offer to the relay")
	}
	type summary struct {
		From, Type, YIAddr, GIAddr, Mask, Router, File string
	}
	sum := func(p *dhcpv4.DHCPv4, from netip.AddrPort) summary {
		return summary{from.String(), p.MessageType().String(), p.YourIPAddr.String(), p.GatewayIPAddr.String(),
			net.IP(p.SubnetMask()).String(), fmt.Sprint(p.Router()), p.BootFileName}
	}
	want := summary{"10.99.0.1:67", "OFFER", "10.99.4.10", "10.99.4.1", "255.255.252.0", "[10.99.4.1]", "undionly.kpxe"}
	if diff := cmp.Diff(want, sum(offer, from)); diff != "" {
		t.Errorf("offer (-want +got):\n%s", diff)
	}

	req = packet(t, dhcpv4.MessageTypeRequest, unknownMAC, arch(iana.INTEL_X86PC), relayed("10.99.4.1"),
		requested(offer.YourIPAddr.String()), serverID("10.99.0.1"))
	ack, from := roundTrip(t, relay, "10.99.0.1:67", req, time.Second)
	if ack == nil {
		t.Fatal("no ack to the relay")
	}
	want.Type = "ACK"
	if diff := cmp.Diff(want, sum(ack, from)); diff != "" {
		t.Errorf("ack (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{unknownMAC + " 10.99.4.10"}, leases.bound()); diff != "" {
		t.Errorf("bound (-want +got):\n%s", diff)
	}

	// A relay from a subnet outside the plan is ignored.
	stranger := udpIn(t, l.cli, "", "10.98.0.1:67")
	if rep, _ := roundTrip(t, stranger, "10.99.0.1:67", discover(t, otherMAC, relayed("10.98.0.1")), 300*time.Millisecond); rep != nil {
		t.Errorf("unknown relay got a %s", rep.MessageType())
	}
	if !waitFor(2*time.Second, func() bool { return metrics.count("discover/ignored") == 3 }) {
		got := metrics.count("discover/ignored")
		t.Errorf("ignored discovers: %d, want 3 (one per try)", got)
	}
}

// TestManyRelayedExchanges plays 256 machines booting at once through a
// relay, against a store whose commits take 20 ms: the workers must wait
// on commits in parallel (256 commits in a row would take over 5 s), and no
// address may be given twice.
func TestManyRelayedExchanges(t *testing.T) {
	leases := newMemLeases(nil)
	leases.delay = 20 * time.Millisecond
	// No Log: hundreds of Info lines would drown a failure.
	s := &Server{Iface: srvIf, ServerIP: serverIP, Plan: testPlan(), Leases: leases, Log: slog.New(slog.DiscardHandler)}
	l := relayLab(t, s)
	relay := udpIn(t, l.cli, "", "10.99.4.1:67")
	pending := &replyMux{waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}}
	go pending.read(relay)

	const machines, parallel = 256, 32
	start := time.Now()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ips = map[string]string{}
	)
	for g := range parallel {
		wg.Go(func() {
			for i := g; i < machines; i += parallel {
				mac := fmt.Sprintf("02:00:00:42:%02x:%02x", i>>8, i&0xff)
				d := discover(t, mac, relayed("10.99.4.1"), xidFor(2*i))
				offer := pending.ask(relay, d)
				if offer == nil {
					t.Errorf("%s: no offer", mac)
					return
				}
				r := packet(t, dhcpv4.MessageTypeRequest, mac, relayed("10.99.4.1"), xidFor(2*i+1),
					requested(offer.YourIPAddr.String()), serverID("10.99.0.1"))
				ack := pending.ask(relay, r)
				if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
					t.Errorf("%s: no ack: %v", mac, ack)
					return
				}
				mu.Lock()
				if other, dup := ips[ack.YourIPAddr.String()]; dup {
					t.Errorf("%s given to %s and %s", ack.YourIPAddr, other, mac)
				}
				ips[ack.YourIPAddr.String()] = mac
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d relayed exchanges in %v (%.0f/s)", machines, elapsed, machines/elapsed.Seconds())
	if len(ips) != machines || len(leases.bound()) != machines {
		t.Errorf("%d addresses acknowledged, %d leases bound; want %d", len(ips), len(leases.bound()), machines)
	}
	if elapsed > 2500*time.Millisecond {
		t.Errorf("took %v: commits are not waited on in parallel", elapsed)
	}
}

// replyMux hands the replies read on one relay socket to the goroutine
// waiting for their xid.
type replyMux struct {
	mu      sync.Mutex
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
}

func (m *replyMux) read(conn *net.UDPConn) {
	buf := make([]byte, maxPacket)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return // closed at the end of the test
		}
		rep, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			continue
		}
		m.mu.Lock()
		if c, ok := m.waiting[rep.TransactionID]; ok {
			select {
			case c <- rep:
			default:
			}
		}
		m.mu.Unlock()
	}
}

// ask sends req and waits for its reply, resending after a second as a
// client would; nil after three tries.
func (m *replyMux) ask(conn *net.UDPConn, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	c := make(chan *dhcpv4.DHCPv4, 1)
	m.mu.Lock()
	m.waiting[req.TransactionID] = c
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.waiting, req.TransactionID)
		m.mu.Unlock()
	}()
	for range 3 {
		if _, err := conn.WriteTo(req.ToBytes(), &net.UDPAddr{IP: net.IPv4(10, 99, 0, 1), Port: ServerPort}); err != nil {
			return nil
		}
		select {
		case rep := <-c:
			return rep
		case <-time.After(time.Second):
		}
	}
	return nil
}
