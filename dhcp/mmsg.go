package dhcp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// batchConn moves datagrams in batches, recvmmsg and sendmmsg, on the
// server's socket, which it takes out of Go's netpoller and waits for
// itself.
//
// Why out of the netpoller: Go watches all its sockets in one epoll set,
// edge-triggered, and every datagram that arrives wakes a thread blocked in
// that set, even while nobody waits for the socket. The reader does not
// wait for most packets (it reads what gathered during readPause), so at
// 10,000 packets a second those wake-ups were about 7,000 context switches
// and 16,000 epoll_pwait calls a second, and the threads they woke were
// taking turns with the clients' own. batchConn keeps a duplicate of the
// descriptor and closes the original, which takes it out of Go's epoll set;
// it waits (ppoll) only when the socket is empty.
//
// Why raw system calls: the socket is non-blocking, so recvmmsg and
// sendmmsg never block, and syscall.Syscall, which tells the scheduler the
// goroutine may block, woke the runtime's monitor thread (sysmon) from its
// deep sleep after every idle moment; it then polled every 20 us for a
// millisecond or more, about 15 % of the server's CPU.
type batchConn struct {
	fd     int // the socket, unknown to Go's netpoller; every call on it passes MSG_DONTWAIT
	wake   int // an eventfd that shutdown makes readable: it ends every wait
	closed atomic.Bool
}

// newBatchConn takes conn's socket over: it closes conn, and the socket
// lives on in the batchConn until its close.
func newBatchConn(conn net.PacketConn) (*batchConn, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, os.NewSyscallError("dup", derr)
	}
	// Closing the original removes it from Go's epoll set (EPOLL_CTL_DEL);
	// the duplicate keeps the socket open.
	conn.Close()
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	return &batchConn{fd: fd, wake: wake}, nil
}

// shutdown makes every read and write, waiting or to come, return
// net.ErrClosed. It may be called more than once, from any goroutine.
func (c *batchConn) shutdown() {
	if c.closed.CompareAndSwap(false, true) {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(c.wake, one[:])
	}
}

// close shuts c down and closes the socket. Call it once no goroutine
// reads or writes any more: a descriptor closed under a system call could
// meanwhile be reused by another file.
func (c *batchConn) close() {
	c.shutdown()
	unix.Close(c.fd)
	unix.Close(c.wake)
}

// call makes op (recvmmsg or sendmmsg, named name in errors) on the
// socket, without blocking, waiting for events while it would block.
func (c *batchConn) call(op uintptr, name string, hdrs *unix.Mmsghdr, n int, events int16) (int, error) {
	for {
		if c.closed.Load() {
			return 0, net.ErrClosed
		}
		r, _, errno := unix.RawSyscall6(op, uintptr(c.fd), uintptr(unsafe.Pointer(hdrs)), uintptr(n), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			return int(r), nil
		case unix.EINTR:
		case unix.EAGAIN:
			if err := c.wait(events); err != nil {
				return 0, err
			}
		default:
			return 0, &net.OpError{Op: name, Net: "udp", Err: errno}
		}
	}
}

// wait blocks until the socket has one of events (or an error for the next
// call to report), or until shutdown.
func (c *batchConn) wait(events int16) error {
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: events}, {Fd: int32(c.wake), Events: unix.POLLIN}}
	for {
		_, err := unix.Ppoll(fds, nil, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return os.NewSyscallError("ppoll", err)
		case fds[1].Revents != 0:
			return net.ErrClosed
		}
		return nil
	}
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
	n, err := c.call(unix.SYS_RECVMMSG, "recvmmsg", &rb.hdrs[0], len(rb.hdrs), unix.POLLIN)
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

// writeBatch is the memory one batch of writes uses, allocated once; oobs
// hold the IP_PKTINFO control messages of broadcast replies.
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
		wb.oobs[i] = make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
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
			putPktinfo(wb.oobs[i], d.ifIndex)
			h.Control = &wb.oobs[i][0]
			h.SetControllen(len(wb.oobs[i]))
		}
	}
	n, err := c.call(unix.SYS_SENDMMSG, "sendmmsg", &wb.hdrs[0], len(ds), unix.POLLOUT)
	clear(wb.iovs[:len(ds)]) // drop the references to the replies
	if err != nil {
		n = 0 // sendmmsg fails only when the first datagram does
	}
	return n, err
}

// putPktinfo writes into b, of unix.CmsgSpace(unix.SizeofInet4Pktinfo)
// bytes, the control message that sends a datagram out of interface
// ifIndex (IP_PKTINFO), in place: a broadcast reply allocates nothing.
func putPktinfo(b []byte, ifIndex int) {
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
	info.Ifindex = int32(ifIndex)
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
