package dhcp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// TestBatchConn sends a batch of datagrams with sendmmsg to two sockets and
// reads them back with recvmmsg: bytes, peer and receiving interface
// (IP_PKTINFO) of each, in order.
func TestBatchConn(t *testing.T) {
	listen := func() (netip.AddrPort, *batchConn) {
		t.Helper()
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := ipv4.NewPacketConn(c).SetControlMessage(ipv4.FlagInterface, true); err != nil {
			t.Fatal(err)
		}
		addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
		bc, err := newBatchConn(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(bc.close)
		return addr, bc
	}
	src, sbc := listen()
	dstA, abc := listen()
	dstB, bbc := listen()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}

	var out []datagram
	for i := range 5 {
		to := dstA
		if i%2 == 1 {
			to = dstB
		}
		d := datagram{b: fmt.Appendf(nil, "packet %d", i), peer: to}
		if i == 4 {
			d.ifIndex = lo.Index // with an IP_PKTINFO control message
		}
		out = append(out, d)
	}
	// Twice through the same batches: a read must reset what the kernel
	// wrote into the headers of the one before.
	wb := newWriteBatch(batchLen)
	rbs := map[*batchConn]*readBatch{abc: newReadBatch(batchLen, maxPacket), bbc: newReadBatch(batchLen, maxPacket)}
	for round := range 2 {
		if n, err := sbc.write(wb, out); err != nil || n != len(out) {
			t.Fatalf("round %d: write: %d sent, %v; want %d", round, n, err, len(out))
		}
		for _, c := range []struct {
			bc   *batchConn
			want []string
		}{{abc, []string{"packet 0", "packet 2", "packet 4"}}, {bbc, []string{"packet 1", "packet 3"}}} {
			var got []datagram
			for len(got) < len(c.want) {
				ds, err := c.bc.read(rbs[c.bc], nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range ds {
					got = append(got, datagram{b: append([]byte(nil), d.b...), peer: d.peer, ifIndex: d.ifIndex})
				}
			}
			for i, d := range got {
				if string(d.b) != c.want[i] || d.peer != src || d.ifIndex != lo.Index {
					t.Errorf("round %d, datagram %d: %q from %v on interface %d; want %q from %v on %d",
						round, i, d.b, d.peer, d.ifIndex, c.want[i], src, lo.Index)
				}
			}
		}
	}

	sbc.shutdown()
	if _, err := sbc.write(wb, out); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after shutdown: %v, want net.ErrClosed", err)
	}
	// A read waiting on an empty socket ends at shutdown.
	read := make(chan error, 1)
	go func() {
		_, err := abc.read(newReadBatch(1, maxPacket), nil)
		read <- err
	}()
	time.Sleep(20 * time.Millisecond)
	abc.shutdown()
	select {
	case err := <-read:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read waiting at shutdown: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read waiting on an empty socket did not end at shutdown")
	}
}

// TestBatchConnLeavesNetpoller checks that the socket batchConn reads is no
// longer in Go's epoll set, whose threads every arriving datagram would
// wake (see batchConn), and that the descriptor Go had is closed.
func TestBatchConnLeavesNetpoller(t *testing.T) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var orig int
	rc, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { orig = int(fd) })
	if !watched(t, orig) {
		t.Fatalf("fd %d of a fresh socket is not in Go's epoll set: the test cannot tell", orig)
	}
	bc, err := newBatchConn(c)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.close()
	if watched(t, bc.fd) || watched(t, orig) {
		t.Errorf("after newBatchConn, the socket (fd %d, was %d) is still in Go's epoll set", bc.fd, orig)
	}
	if _, err := c.WriteTo([]byte("x"), c.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the original conn still writes (%v): newBatchConn must close it", err)
	}
}

// watched reports whether fd is registered in an epoll set of this process
// (Go's netpoller has the only one): /proc/self/fdinfo of an epoll
// descriptor lists a "tfd:" line per registered descriptor.
func watched(t *testing.T, fd int) bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "tfd:" && f[1] == strconv.Itoa(fd) {
				return true
			}
		}
	}
	return false
}

// TestBatchConnErrors: sendmmsg fails only when its first datagram
// does; write reports that datagram's error and nothing sent.
func TestBatchConnErrors(t *testing.T) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bc, err := newBatchConn(c)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.close()
	// Port 0 is not a destination: the kernel refuses the datagram.
	bad := datagram{b: []byte("x"), peer: netip.MustParseAddrPort("127.0.0.1:0")}
	n, err := bc.write(newWriteBatch(batchLen), []datagram{bad, bad})
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "sendmmsg" || n != 0 {
		t.Errorf("write to port 0: %d sent, %v; want 0 and a sendmmsg error", n, err)
	}
}

func TestSockaddrRoundTrip(t *testing.T) {
	for _, s := range []string{"10.0.0.1:67", "255.255.255.255:68", "198.18.0.1:4011", "0.0.0.0:0"} {
		ap := netip.MustParseAddrPort(s)
		sa := sockaddr(ap)
		if got := sockaddrPort(&sa); got != ap {
			t.Errorf("%s: round trip gives %s", s, got)
		}
	}
	sa := sockaddr(netip.MustParseAddrPort("10.0.0.1:67"))
	sa.Family = 10 // AF_INET6: not what a udp4 socket returns
	if got := sockaddrPort(&sa); got.IsValid() {
		t.Errorf("a non-IPv4 sockaddr gives %s, want the zero AddrPort", got)
	}
}

// TestPutPktinfo: the control message written in place is the one x/net
// marshals, also when the buffer held another before.
func TestPutPktinfo(t *testing.T) {
	b := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	for _, ifIndex := range []int{7, 3, 1 << 20} {
		putPktinfo(b, ifIndex)
		if want := (&ipv4.ControlMessage{IfIndex: ifIndex}).Marshal(); !bytes.Equal(b, want) {
			t.Errorf("interface %d: % x, want % x", ifIndex, b, want)
		}
	}
}
