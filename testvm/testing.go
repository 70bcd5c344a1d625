package testvm

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// KeepEnv, set to 1, keeps every test lab's work directory (logs, serial
// consoles, configs) after the test, for a look at what happened.
const KeepEnv = "UNDERCLOUD_TESTVM_KEEP"

// NewTestLab is NewLab for tests: it fails the test when the lab cannot be
// built and closes it in t.Cleanup, pass or fail. When the test failed, the
// cleanup first logs the tail of every serial console and process log.
func NewTestLab(t testing.TB, opt Options) *Lab {
	t.Helper()
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if os.Getenv(KeepEnv) == "1" {
		opt.KeepDir = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := NewLab(ctx, opt)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logTails(t, l.Dir)
		}
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
		if opt.KeepDir {
			t.Logf("lab work directory kept: %s", l.Dir)
		}
	})
	return l
}

// logTails logs the end of every serial console and process log under dir.
func logTails(t testing.TB, dir string) {
	for _, pattern := range []string{"*/serial.log", "*/qemu.log", "*.log", "*/bmc/chassis.log"} {
		logs, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, p := range logs {
			t.Logf("--- %s (tail):\n%s", p, tailFile(p, 3000))
		}
	}
}

// TestImage builds (or reuses, when up to date) the test image in
// DefaultImageDir and fails the test when it cannot.
func TestImage(t testing.TB) Image {
	t.Helper()
	dir, err := DefaultImageDir()
	if err != nil {
		t.Fatalf("test image: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	img, err := BuildImage(ctx, dir)
	if err != nil {
		t.Fatalf("test image: %v", err)
	}
	return img
}

// testWriter sends slog output to t.Log.
type testWriter struct{ t testing.TB }

// Write logs p as one test log entry.
func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// StartTestVM is StartVM that fails the test on error.
func (l *Lab) StartTestVM(t testing.TB, cfg VMConfig) *VM {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	v, err := l.StartVM(ctx, cfg)
	if err != nil {
		t.Fatalf("start vm: %v", err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("close %s: %v", v.Name, err)
		}
	})
	return v
}

// String describes the VM for test logs.
func (v *VM) String() string {
	return fmt.Sprintf("%s(%s %s %s)", v.Name, v.MAC, v.Firmware, v.Accel)
}
