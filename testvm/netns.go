package testvm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// namePrefix starts every namespace and work directory the package creates;
// the pid that follows lets a later run tell its own leftovers from a crashed
// run's, and [Leftovers] find them.
const namePrefix = "uclab-"

// netnsDir is where `ip netns add` pins named namespaces.
const netnsDir = "/run/netns"

// newLabName returns uclab-<pid>-<random>: unique among concurrent test
// binaries and recognisable by [Leftovers].
func newLabName() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random lab name: %w", err)
	}
	return fmt.Sprintf("%s%d-%s", namePrefix, os.Getpid(), hex.EncodeToString(b)), nil
}

// randomIfName returns a host interface name of at most 15 bytes.
func randomIfName(prefix string) (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random interface name: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

// ip runs the iproute2 command with args and returns an error carrying its output.
func ip(ctx context.Context, args ...string) error {
	path, err := lookTool("ip")
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// InNetns runs fn on an OS thread that has joined the named network namespace
// (one under /run/netns, as `ip netns add` makes).
// Sockets created by fn stay in that namespace for their whole life, whichever
// thread later uses them. The thread goes back to its original namespace before
// it is unlocked; if that fails it stays locked and the runtime discards it.
func InNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join(netnsDir, name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("leave netns %s: %w", name, err)
			return // still locked: the runtime ends this thread
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Leftovers lists what labs of process pid left behind: network namespaces
// named for it and live processes whose command line mentions one of its lab
// names (QEMU, dnsmasq, ipmi_sim and the servers all get paths in the lab
// directory). Tests assert it is empty after cleanup.
func Leftovers(pid int) ([]string, error) {
	mine := namePrefix + strconv.Itoa(pid) + "-"
	var found []string
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("list %s: %w", netnsDir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), mine) {
			found = append(found, "netns "+e.Name())
		}
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	for _, e := range procs {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // exited meanwhile, or a kernel thread
		}
		if strings.Contains(string(cmdline), mine) {
			args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
			found = append(found, fmt.Sprintf("process %d %s", p, strings.Join(args, " ")))
		}
	}
	return found, nil
}

// removeStaleNetns deletes namespaces left by lab processes that no longer
// exist (a test binary killed before its cleanup ran).
func removeStaleNetns(ctx context.Context) {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); err == unix.ESRCH {
			_ = ip(ctx, "netns", "del", e.Name())
		}
	}
}
