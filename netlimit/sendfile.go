package netlimit

import (
	"io"
	"net"
	"os"
	"syscall"
)

// sendChunk bounds one sendfile(2) call, as Go's own loop does.
const sendChunk = 4 << 20

// sendFile sends r to tc with sendfile(2) when r is a file (or a file
// behind an *io.LimitedReader, which it counts down), and reports whether
// it could. It does what net.TCPConn.ReadFrom does, with one difference:
// the call is made without telling the Go scheduler it may block
// (RawSyscall). On a non-blocking socket, with the file in the page cache,
// sendfile never sleeps, but it runs for hundreds of microseconds per
// megabyte; told of a syscall that long, the scheduler hands the
// goroutine's P to another thread and takes one back when it returns:
// futex wake-ups, thread switches and a trip through the run queue for
// every call. nginx pays none of that, and under a boot storm it was about
// 7 % of the server's CPU. A file not in the page cache makes the call
// wait for the disk while it holds its P, as an nginx worker waits; the
// artifacts of a bring-up are read by every machine, so they are cached
// after the first.
func sendFile(tc *net.TCPConn, r io.Reader) (written int64, handled bool, err error) {
	limit := int64(-1) // to EOF
	lr, _ := r.(*io.LimitedReader)
	if lr != nil {
		r, limit = lr.R, lr.N
	}
	f, ok := r.(*os.File)
	if !ok {
		return 0, false, nil
	}
	if limit == 0 {
		return 0, true, nil
	}
	src, err := f.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	dst, err := tc.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	var serr error
	cerr := src.Control(func(sfd uintptr) {
		werr := dst.Write(func(dfd uintptr) bool {
			for limit != 0 {
				n := int64(sendChunk)
				if limit > 0 {
					n = min(n, limit)
				}
				k, _, e := syscall.RawSyscall6(syscall.SYS_SENDFILE, dfd, sfd, 0, uintptr(n), 0, 0)
				switch {
				case e == syscall.EAGAIN:
					return false // wait until the socket takes more
				case e == syscall.EINTR:
					continue
				case e != 0:
					serr = os.NewSyscallError("sendfile", e)
					return true
				case k == 0:
					return true // end of file
				}
				written += int64(k)
				if limit > 0 {
					limit -= int64(k)
				}
			}
			return true
		})
		if serr == nil {
			serr = werr
		}
	})
	if lr != nil {
		lr.N -= written
	}
	if serr == nil {
		serr = cerr
	}
	if written == 0 && serr != nil {
		// Nothing sent (a file sendfile cannot read, say): let the
		// caller copy, as net.TCPConn.ReadFrom falls back.
		if _, ok := serr.(*os.SyscallError); ok {
			return 0, false, nil
		}
	}
	return written, true, serr
}
