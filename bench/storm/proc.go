package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a long-lived process the storm started (a server, a cache),
// its output in a log file.
type proc struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startIn starts args inside namespace ns (ip netns exec execs the
// command, so the pid is the command's own) with extra environment.
func startIn(ns, name, logDir string, env []string, args ...string) (*proc, error) {
	p := &proc{Name: name, Log: filepath.Join(logDir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), env...)
	// Its own process group: a Ctrl-C of the benchmark reaches the
	// benchmark, which stops the servers in order.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) Pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, with its error.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, and SIGKILL after grace.
func (p *proc) Stop(grace time.Duration) {
	if p == nil || p.cmd.Process == nil {
		return
	}
	if ok, _ := p.exited(); ok {
		return
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.done
	}
}

// tail is the end of the process's log, for an error message.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.Log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// cpuSeconds is the user+system CPU time of pid and its children
// (/proc/<pid>/stat utime and stime, fields 14 and 15): nginx's master and
// workers, or a single server.
func cpuSeconds(pid int) (float64, error) {
	ticks, err := procTicks(pid)
	if err != nil {
		return 0, err
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if ppid, err := procPPid(child); err == nil && ppid == pid {
			if t, err := procTicks(child); err == nil {
				ticks += t
			}
		}
	}
	return float64(ticks) / 100, nil // USER_HZ is 100 on Linux
}

// statFields are the fields of /proc/<pid>/stat after the command name,
// which may hold spaces and parentheses: field 3 (state) is [0].
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, errors.New("malformed stat")
	}
	return strings.Fields(string(b[i+1:])), nil
}

func procTicks(pid int) (int64, error) {
	f, err := statFields(pid)
	if err != nil || len(f) < 13 {
		return 0, fmt.Errorf("stat of %d: %v", pid, err)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64) // utime, field 14
	s, err2 := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + s, nil
}

func procPPid(pid int) (int, error) {
	f, err := statFields(pid)
	if err != nil || len(f) < 2 {
		return 0, fmt.Errorf("stat of %d: %v", pid, err)
	}
	return strconv.Atoi(f[1])
}
