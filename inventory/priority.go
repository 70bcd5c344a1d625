package inventory

import (
	"runtime"
	"syscall"
)

// Nice values of the inventory's own threads. The DHCP reader answers
// from memory, so what it waits for under load is a CPU, and on a busy
// host the writer's group commits (milliseconds of SQLite work each) and
// the checkpoint copies took that CPU from it: the reader overslept by
// 5 to 10 ms, a backlog of hundreds of requests built up, and their replies
// left in one burst that overflowed the receiving socket (a relay agent's
// or a client's). Niced, they take what the packet path leaves, which is
// most of it (the oversleeps remain, fewer: the rest comes from the host
// and the Go runtime): a commit still gets about a tenth of a core that
// others want at the same time, a checkpoint less. A lease write a DHCP
// answer waits for goes through the writer too, so it is niced less than
// the checkpointer, which nothing waits for.
const (
	writerNice     = 10
	checkpointNice = 19
)

// lowerPriority runs the calling goroutine, from now until it exits, on a
// thread of its own with nice value n. The thread ends with the goroutine
// (Go does not reuse a locked thread), so no other goroutine inherits the
// priority. Best effort: a failure leaves the normal priority.
func lowerPriority(n int) {
	runtime.LockOSThread()
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), n)
}
