package testvm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// slotDir holds the machine-wide VM slot locks and the KVM probe verdict. It
// is on tmpfs: both are forgotten when the machine reboots, as they should be.
const slotDir = "/run/undercloud-testvm"

// slots is a counting semaphore shared by every process on the machine: slot
// k is an exclusive flock on slot-k. `go test ./...` runs several test binaries
// at once and each may boot VMs; TCG guests on more vCPUs than cores only get
// slower and hit their deadlines. The kernel drops a lock when its holder dies,
// so a crashed test never leaks a slot.
type slots struct {
	dir string
	n   int
}

// acquire blocks until a slot is free or ctx ends; release the returned file
// by closing it.
func (s *slots) acquire(ctx context.Context) (*os.File, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("vm slots: %w", err)
	}
	wait := 50 * time.Millisecond
	for {
		for k := range s.n {
			f, err := os.OpenFile(filepath.Join(s.dir, fmt.Sprintf("slot-%d", k)), os.O_CREATE|os.O_RDWR, 0o644)
			if err != nil {
				return nil, fmt.Errorf("vm slots: %w", err)
			}
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
				return f, nil
			}
			_ = f.Close()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for one of %d VM slots: %w", s.n, ctx.Err())
		case <-time.After(wait):
		}
		if wait < time.Second {
			wait *= 2
		}
	}
}
