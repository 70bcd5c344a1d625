package testvm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Proc is a process the lab started; it is killed when the lab closes.
type Proc struct {
	// Name labels the process in errors and names its log file.
	Name string
	// Log is the file that receives its stdout and stderr (unless the caller
	// took stdout, as the VM does for the serial console).
	Log string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done is closed
}

// startProc starts cmd in its own process group, with SIGKILL as its
// parent-death signal so a crashed test binary leaves no VM behind.
func startProc(name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
	p := &Proc{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	var logf *os.File
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log of %s: %w", name, err)
		}
		logf = f
		if cmd.Stdout == nil {
			cmd.Stdout = f
		}
		if cmd.Stderr == nil {
			cmd.Stderr = f
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		if logf != nil {
			_ = logf.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		if logf != nil {
			_ = logf.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error once Done is closed.
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after grace, and waits
// for the process to exit. Stopping an exited process is a no-op.
func (p *Proc) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that left the group's leader behind die with the group.
	_ = syscall.Kill(pgid, syscall.SIGKILL)
}

// Kill sends SIGKILL to the process group at once, as a crash or an
// operator's kill -9 would, and waits for the process to exit.
func (p *Proc) Kill() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s already exited: %v", p.Name, p.err)
	default:
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", p.Name, err)
	}
	<-p.done
	return nil
}

// exitError describes how a process ended, with the tail of its log.
func (p *Proc) exitError() error {
	msg := p.Name + " exited with status 0"
	if err := p.Err(); err != nil {
		msg = fmt.Sprintf("%s exited: %v", p.Name, err)
	}
	if p.Log != "" {
		if tail := tailFile(p.Log, 2000); tail != "" {
			msg += "\n" + tail
		}
	}
	return errors.New(msg)
}

// tailFile returns the last n bytes of a file, or "" when it cannot be read.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	if off := st.Size() - n; off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return ""
		}
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
