package dhcp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// batchConn moves datagrams in batches: recvmmsg and sendmmsg on the
// server's non-blocking socket, waiting for it through Go's netpoller.
//
// Why not x/net's ReadBatch and WriteBatch: they make the calls through
// syscall.Syscall, which tells the scheduler the goroutine may block. When
// the process was idle a moment before (every few packets, for a DHCP
// server), that wakes the runtime's monitor thread (sysmon) from its deep
// sleep, and it then polls every 20 us for a millisecond or more: at
// thousands of packets a second that thread alone took about 15 % of the
// server's CPU. On a non-blocking socket the calls never block, so they are
// made as raw system calls, which the scheduler does not see.
type batchConn struct {
	rc syscall.RawConn
}

func newBatchConn(conn net.PacketConn) (*batchConn, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &batchConn{rc: rc}, nil
}

// datagram is one packet read or to write: its bytes, its peer and the
// interface it came in on or must leave by (0: unknown, or any).
type datagram struct {
	b       []byte
	peer    netip.AddrPort
	ifIndex int
}

// readBatch is the memory one batch of reads uses, allocated and pointed
// at once; n is how many headers the last read filled.
type readBatch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	bufs  [][]byte
	oobs  [][]byte
	n     int
	cm    ipv4.ControlMessage
}

func newReadBatch(n, size int) *readBatch {
	rb := &readBatch{
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet4, n),
		bufs:  make([][]byte, n),
		oobs:  make([][]byte, n),
	}
	for i := range n {
		rb.bufs[i] = make([]byte, size)
		rb.oobs[i] = ipv4.NewControlMessage(ipv4.FlagInterface)
		rb.iovs[i] = unix.Iovec{Base: &rb.bufs[i][0]}
		rb.iovs[i].SetLen(size)
		h := &rb.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&rb.names[i]))
		h.Iov = &rb.iovs[i]
		h.SetIovlen(1)
		h.Control = &rb.oobs[i][0]
	}
	rb.n = n
	return rb
}

// read waits for at least one datagram and reads as many as are waiting,
// up to the batch size. The datagrams' bytes are the batch's buffers, valid
// until the next read.
func (c *batchConn) read(rb *readBatch, out []datagram) ([]datagram, error) {
	// The kernel wrote the lengths of what the last read filled.
	for i := range rb.n {
		h := &rb.hdrs[i]
		h.Hdr.Namelen = unix.SizeofSockaddrInet4
		h.Hdr.SetControllen(len(rb.oobs[i]))
		h.Hdr.Flags, h.Len = 0, 0
	}
	rb.n = 0
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&rb.hdrs[0])), uintptr(len(rb.hdrs)), unix.MSG_DONTWAIT, 0, 0)
			n, errno = int(r), e
			if errno != unix.EINTR {
				return errno != unix.EAGAIN
			}
		}
	})
	if err == nil && errno != 0 {
		err = &net.OpError{Op: "recvmmsg", Net: "udp", Err: errno}
	}
	if err != nil {
		return out, err
	}
	rb.n = n
	for i := range n {
		h := &rb.hdrs[i]
		d := datagram{b: rb.bufs[i][:h.Len], peer: sockaddrPort(&rb.names[i])}
		if rb.cm.Parse(rb.oobs[i][:h.Hdr.Controllen]) == nil {
			d.ifIndex = rb.cm.IfIndex
		}
		out = append(out, d)
	}
	return out, nil
}

// writeBatch is the memory one batch of writes uses, allocated once.
type writeBatch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	oobs  [][]byte
}

func newWriteBatch(n int) *writeBatch {
	wb := &writeBatch{
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet4, n),
		oobs:  make([][]byte, n),
	}
	for i := range n {
		wb.oobs[i] = make([]byte, 0, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	}
	return wb
}

// write sends ds (at most the batch size) and returns how many left: it
// waits while the socket buffer is full, and stops at the first datagram
// that fails, whose error it returns.
func (c *batchConn) write(wb *writeBatch, ds []datagram) (int, error) {
	ds = ds[:min(len(ds), len(wb.hdrs))]
	for i, d := range ds {
		wb.names[i] = sockaddr(d.peer)
		wb.iovs[i] = unix.Iovec{}
		if len(d.b) > 0 {
			wb.iovs[i].Base = &d.b[0]
			wb.iovs[i].SetLen(len(d.b))
		}
		h := &wb.hdrs[i].Hdr
		*h = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&wb.names[i])), Namelen: unix.SizeofSockaddrInet4, Iov: &wb.iovs[i]}
		h.SetIovlen(1)
		if d.ifIndex > 0 {
			wb.oobs[i] = (&ipv4.ControlMessage{IfIndex: d.ifIndex}).Marshal()
			h.Control = &wb.oobs[i][0]
			h.SetControllen(len(wb.oobs[i]))
		}
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for {
			r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&wb.hdrs[0])), uintptr(len(ds)), unix.MSG_DONTWAIT, 0, 0)
			n, errno = int(r), e
			if errno != unix.EINTR {
				return errno != unix.EAGAIN
			}
		}
	})
	clear(wb.iovs[:len(ds)]) // drop the references to the replies
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		n = 0 // sendmmsg fails only when the first datagram does
	}
	return n, err
}

// sockaddrPort is the address in sa, or the zero AddrPort when it is not
// an IPv4 one (the socket is udp4: it never is).
func sockaddrPort(sa *unix.RawSockaddrInet4) netip.AddrPort {
	if sa.Family != unix.AF_INET {
		return netip.AddrPort{}
	}
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
}

func sockaddr(ap netip.AddrPort) unix.RawSockaddrInet4 {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().Unmap().As4()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	return sa
}
