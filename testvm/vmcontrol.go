package testvm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// monitor records why the VM died: QEMU exiting, or QMP reporting a run
// state no boot recovers from. After a KVM/TCG internal error QEMU stays
// alive but paused, so only query-status shows it.
func (v *VM) monitor() {
	defer v.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-v.proc.Done():
			v.setFailed(v.proc.exitError())
			return
		case ev := <-v.QMP.Events():
			switch ev.Name {
			case "GUEST_PANICKED":
				v.setFailed(fmt.Errorf("%s: guest panicked: %s", v.Name, ev.Data))
				continue
			case "RESET": // from us, the BMC or the guest: a new boot begins
				v.newBoot()
				continue
			case "STOP": // paused: by request, or by an internal error
			default:
				continue
			}
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := v.QMP.Status(ctx)
		cancel()
		if err == nil {
			switch st.Status {
			case "internal-error", "guest-panicked", "io-error":
				v.setFailed(fmt.Errorf("%s: QEMU run state %s", v.Name, st.Status))
			}
		}
	}
}

func (v *VM) setFailed(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.failed == nil && !v.closed {
		v.failed = err
	}
}

// Err reports why the VM died (QEMU exited, internal error, guest panic), or nil.
func (v *VM) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.failed
}

// BootStarted is when the current boot began: start, Reset or PowerOn.
func (v *VM) BootStarted() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.started
}

func (v *VM) newBoot() {
	v.mu.Lock()
	v.started = time.Now()
	v.mu.Unlock()
}

// WaitFor waits for the next console line (after the last one WaitFor
// returned) containing substr. It fails fast when QEMU exits, QMP reports an
// internal error or panic, the guest kernel panics, ctx ends or the boot's
// BootTimeout passes; the error carries the console's last lines.
func (v *VM) WaitFor(ctx context.Context, substr string) (Line, error) {
	deadline := v.BootStarted().Add(v.cfg.BootTimeout)
	ctx, cancel := context.WithDeadlineCause(ctx, deadline,
		fmt.Errorf("%s: boot timeout %s passed", v.Name, v.cfg.BootTimeout))
	defer cancel()
	v.Console.mu.Lock()
	from := v.Console.cursor
	v.Console.mu.Unlock()
	fail := func() error {
		if err := v.Err(); err != nil {
			return err
		}
		if v.Console.containsFrom(from, "Kernel panic - not syncing") {
			return fmt.Errorf("%s: guest kernel panicked", v.Name)
		}
		if substr != MarkStopped && v.Console.containsFrom(from, MarkStopped) {
			return fmt.Errorf("%s: the initramfs stopped", v.Name)
		}
		return nil
	}
	l, err := v.Console.waitFor(ctx, substr, fail)
	if errors.Is(err, errConsoleClosed) {
		// QEMU closed its stdout: say why it exited once it has.
		select {
		case <-v.proc.Done():
			err = v.proc.exitError()
		case <-time.After(3 * time.Second):
		}
	}
	if err != nil {
		return l, fmt.Errorf("%s (%s): %w\n--- last console lines:\n%s", v.Name, v.Firmware, err, v.Console.Tail(25))
	}
	return l, nil
}

// containsFrom reports whether a line at index from or later contains substr.
func (c *Console) containsFrom(from int, substr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := from; i < len(c.lines); i++ {
		if strings.Contains(c.lines[i].Text, substr) {
			return true
		}
	}
	return false
}

// Reset is a hard reset (QMP system_reset): the VM boots again from firmware,
// a full second PXE boot.
//
// Now and then OVMF under TCG hangs on a warm reset before it prints a thing
// (once in CI: a silent console for five minutes while the other VMs booted).
// A machine room answers that with another reset, and so does Reset: it
// waits up to firmwareQuiet for the first console line and resets again, at
// most twice, saying so in the lab log.
func (v *VM) Reset(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		from := v.Console.len()
		v.newBoot()
		if _, err := v.QMP.Execute(ctx, "system_reset", nil); err != nil {
			return err
		}
		if attempt == 3 || v.Console.waitOutput(ctx, from, firmwareQuiet) {
			return nil
		}
		v.lab.Log.Warn("firmware printed nothing after a reset; resetting again",
			"vm", v.Name, "firmware", v.Firmware, "waited", firmwareQuiet, "attempt", attempt)
	}
}

// firmwareQuiet is how long a reset VM may print nothing before Reset
// resets it again. Both firmwares print within seconds; under TCG on a
// loaded CI machine within 20.
const firmwareQuiet = 90 * time.Second

// PowerOff stops the guest CPUs (QMP stop): power off as far as the network
// and the BMC can tell. PowerOn boots it again from firmware.
func (v *VM) PowerOff(ctx context.Context) error {
	_, err := v.QMP.Execute(ctx, "stop", nil)
	return err
}

// PowerOn resets and resumes a stopped or never-started VM (QMP system_reset,
// cont), so it boots from firmware.
func (v *VM) PowerOn(ctx context.Context) error {
	v.newBoot()
	if _, err := v.QMP.Execute(ctx, "system_reset", nil); err != nil {
		return err
	}
	_, err := v.QMP.Execute(ctx, "cont", nil)
	return err
}

// Powerdown presses the ACPI power button (QMP system_powerdown); the test
// image ignores it, as a busy installer might.
func (v *VM) Powerdown(ctx context.Context) error {
	_, err := v.QMP.Execute(ctx, "system_powerdown", nil)
	return err
}

// Status is QMP query-status.
func (v *VM) Status(ctx context.Context) (QMPStatus, error) { return v.QMP.Status(ctx) }
