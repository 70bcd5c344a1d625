package testvm

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// AccelEnv overrides Options.Accel: "tcg", "kvm" or "auto".
const AccelEnv = "UNDERCLOUD_TESTVM_ACCEL"

// probeMarker is what the kernel prints (at loglevel 7) when it starts the
// initramfs's /init: the guest reached userspace.
const probeMarker = "Run /init as init process"

// accelerator decides once per lab between KVM and TCG.
func (l *Lab) accelerator(ctx context.Context) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.accel != "" {
		return l.accel, nil
	}
	choice := os.Getenv(AccelEnv)
	if choice == "" {
		choice = l.opt.Accel
	}
	switch choice {
	case "tcg", "kvm":
		l.accel = choice
	case "", "auto":
		l.accel = l.probeAccel(ctx)
	default:
		return "", fmt.Errorf("testvm: accelerator %q: want tcg, kvm or auto", choice)
	}
	return l.accel, nil
}

// probeAccel returns "kvm" only when a guest actually reached userspace
// under KVM. /dev/kvm can exist while KVM cannot run a guest (nested
// virtualisation here hangs without a word), so nothing short of a boot
// proves it. The verdict is kept in /run (forgotten on reboot) because a
// failed probe costs its whole timeout.
func (l *Lab) probeAccel(ctx context.Context) string {
	cache := filepath.Join(slotDir, "accel")
	if b, err := os.ReadFile(cache); err == nil {
		if v := strings.TrimSpace(string(b)); v == "kvm" || v == "tcg" {
			return v
		}
	}
	verdict, why := "tcg", ""
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		why = "no usable /dev/kvm"
	} else {
		_ = f.Close()
		img, err := l.probeImage()
		if err != nil {
			// Not cached: with an image a later lab can still probe.
			l.Log.Info("kvm probe skipped, using tcg", "reason", err)
			return "tcg"
		}
		if err := probeKVM(ctx, img, 8*time.Second); err != nil {
			why = err.Error()
		} else {
			verdict = "kvm"
		}
	}
	l.Log.Info("accelerator probed", "accel", verdict, "reason", why)
	if err := os.MkdirAll(slotDir, 0o755); err == nil {
		_ = os.WriteFile(cache, []byte(verdict+"\n"), 0o644)
	}
	return verdict
}

// probeImage is the image the probe boots: Options.ProbeImage, else the
// default image directory if it has been built.
func (l *Lab) probeImage() (Image, error) {
	if l.opt.ProbeImage.Kernel != "" {
		return l.opt.ProbeImage, nil
	}
	dir, err := DefaultImageDir()
	if err != nil {
		return Image{}, err
	}
	return LoadImage(dir)
}

// probeKVM boots the test image's kernel directly under KVM and waits for
// kernel to start its /init.
func probeKVM(ctx context.Context, img Image, timeout time.Duration) error {
	qemu, err := lookTool("qemu-system-x86_64")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-machine", "q35", "-accel", "kvm", "-m", "256", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0",
		"-kernel", img.Kernel, "-initrd", img.Initrd,
		"-append", "console=ttyS0 loglevel=7")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kvm probe: %w", err)
	}
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), probeMarker) {
				found <- true
				return
			}
		}
		found <- false
	}()
	var ok bool
	select {
	case ok = <-found:
	case <-ctx.Done():
	}
	cancel()
	_ = cmd.Wait()
	if !ok {
		return fmt.Errorf("kvm probe: no %q within %s", probeMarker, timeout)
	}
	return nil
}
