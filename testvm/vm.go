package testvm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// Firmware selects the VM's firmware.
type Firmware int

// The firmwares a VM can boot with.
const (
	// BIOS is SeaBIOS; the NIC's iPXE ROM boots as a legacy PXE ROM.
	BIOS Firmware = iota
	// UEFI is OVMF with a private copy of its variable store.
	UEFI
)

// String names the firmware: "bios" or "uefi".
func (f Firmware) String() string {
	switch f {
	case BIOS:
		return "bios"
	case UEFI:
		return "uefi"
	default:
		return fmt.Sprintf("Firmware(%d)", int(f))
	}
}

// VMConfig describes a VM.
type VMConfig struct {
	// Name names the VM in logs and its directory under the lab; default vm<N>.
	Name string
	// MAC is the NIC's address; required, so a test knows which DHCP
	// reservation the VM will hit. See [MAC].
	MAC net.HardwareAddr
	// Firmware is BIOS (default) or UEFI.
	Firmware Firmware
	// MemoryMiB is the guest RAM; default 768: the live root (a ~60 MiB
	// squashfs) is held in RAM with its page cache and a tmpfs overlay.
	MemoryMiB int
	// DiskMiB, when set, gives the VM a blank virtio disk of that size
	// (/dev/vda in the guest), second in boot order after the NIC, as on a
	// server set to boot the network first.
	DiskMiB int
	// PoweredOff creates the VM stopped before its first instruction (QEMU -S):
	// it boots on PowerOn, e.g. from its BMC.
	PoweredOff bool
	// FirmwarePXE, with UEFI, boots through the firmware's own UEFI PXE
	// client (the NIC gets no option ROM): DHCP, then TFTP of the iPXE binary
	// the server names, then iPXE -- the flow of a real UEFI server. Without
	// it the NIC's ROM is iPXE itself (ipxe-qemu), which skips TFTP. SeaBIOS
	// has no PXE client of its own, so BIOS VMs always use the iPXE ROM.
	FirmwarePXE bool
	// BootTimeout bounds each boot: WaitFor fails this long after the VM was
	// started, reset or powered on through this VM value. Default 3 minutes.
	BootTimeout time.Duration
}

// MAC returns the deterministic lab MAC 52:54:00:99:<hi>:<lo> for VM number n
// (QEMU's locally administered prefix).
func MAC(n int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0x00, 0x99, byte(n >> 8), byte(n)}
}

// VM is a running QEMU guest on the lab bridge.
type VM struct {
	// Name is the VM's name.
	Name string
	// MAC is its NIC's address.
	MAC net.HardwareAddr
	// Firmware is what it boots with.
	Firmware Firmware
	// Tap is its tap interface on the lab bridge.
	Tap string
	// Dir holds its serial log, QEMU log, QMP sockets and firmware variables.
	Dir string
	// Accel is the accelerator it runs under: "tcg" or "kvm".
	Accel string
	// Console is its serial console.
	Console *Console
	// QMP is the harness's monitor connection; the VM's monitor goroutine
	// consumes its Events. The BMC has its own socket, BMCSocket, since a QMP
	// socket serves one client at a time.
	QMP *QMP
	// BMCSocket is the second QMP socket, for the VM's BMC.
	BMCSocket string

	lab     *Lab
	cfg     VMConfig
	proc    *Proc
	slot    io.Closer
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	started time.Time // start of the current boot, as far as this value knows
	failed  error     // set once QEMU died or the guest crashed
	closed  bool
}

// StartVM creates a tap and boots a VM on it. It waits for a machine-wide VM
// slot first (Options.MaxVMs). The lab closes the VM if the caller does not.
func (l *Lab) StartVM(ctx context.Context, cfg VMConfig) (_ *VM, err error) {
	if len(cfg.MAC) != 6 {
		return nil, errors.New("testvm: VMConfig.MAC is required (6 bytes)")
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 768
	}
	if cfg.BootTimeout == 0 {
		cfg.BootTimeout = 3 * time.Minute
	}
	l.mu.Lock()
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("vm%d", l.nvms)
	}
	l.nvms++
	l.mu.Unlock()
	qemu, err := lookTool("qemu-system-x86_64")
	if err != nil {
		return nil, err
	}
	// QEMU's virtio-net-pci loads this iPXE ROM (BIOS and EFI images in one)
	// by default; without it the VM cannot PXE boot.
	if _, err := os.Stat(virtioROM); err != nil {
		return nil, fmt.Errorf("%s missing: apt-get install ipxe-qemu", virtioROM)
	}
	if cfg.Firmware == UEFI {
		for _, f := range []string{ovmfCode, ovmfVars} {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("%s missing: apt-get install ovmf", f)
			}
		}
	}
	accel, err := l.accelerator(ctx)
	if err != nil {
		return nil, err
	}
	slot, err := l.slots.acquire(ctx)
	if err != nil {
		return nil, err
	}
	v := &VM{
		Name: cfg.Name, MAC: cfg.MAC, Firmware: cfg.Firmware, Accel: accel,
		Dir: filepath.Join(l.Dir, cfg.Name), lab: l, cfg: cfg, slot: slot,
		stop: make(chan struct{}),
	}
	defer func() {
		if err != nil {
			_ = v.Close()
		}
	}()
	if err := os.Mkdir(v.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("vm dir: %w", err)
	}
	if v.Tap, err = l.addTap(ctx); err != nil {
		return nil, err
	}
	args, err := v.qemuArgs(accel)
	if err != nil {
		return nil, err
	}
	// QEMU's stdout is the serial console: a pipe read by Console. The write
	// end goes to QEMU only, so EOF means QEMU is gone.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("console pipe: %w", err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.Name, qemu}, args...)...)
	cmd.Stdout = w
	v.proc, err = l.startProc("qemu-"+cfg.Name, cmd, filepath.Join(v.Dir, "qemu.log"))
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	v.started = time.Now()
	if v.Console, err = newConsole(r, filepath.Join(v.Dir, "serial.log")); err != nil {
		_ = r.Close()
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	go func() {
		select {
		case <-v.proc.Done():
			cancel()
		case <-qctx.Done():
		}
	}()
	if v.QMP, err = DialQMP(qctx, filepath.Join(v.Dir, "qmp.sock")); err != nil {
		if v.proc.Err() != nil || isDone(v.proc.Done()) {
			return nil, v.proc.exitError()
		}
		return nil, err
	}
	v.wg.Add(1)
	go v.monitor()
	l.onClose(v.Close)
	l.Log.Info("vm started", "vm", v.Name, "mac", v.MAC.String(), "firmware", v.Firmware.String(), "accel", accel, "tap", v.Tap)
	return v, nil
}

// qemuArgs is the QEMU command line: q35, one vCPU, no default devices, the
// serial console on stdio, two QMP sockets and virtio-net first in boot order.
func (v *VM) qemuArgs(accel string) ([]string, error) {
	v.BMCSocket = filepath.Join(v.Dir, "bmc.sock")
	args := []string{
		"-name", "guest=" + v.Name,
		"-machine", "q35,graphics=off",
		"-accel", accel,
		"-m", fmt.Sprint(v.cfg.MemoryMiB), "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0",
		"-qmp", "unix:" + filepath.Join(v.Dir, "qmp.sock") + ",server=on,wait=off",
		"-qmp", "unix:" + v.BMCSocket + ",server=on,wait=off",
		"-netdev", "tap,id=net0,ifname=" + v.Tap + ",script=no,downscript=no",
	}
	nic := "virtio-net-pci,netdev=net0,mac=" + v.MAC.String() + ",bootindex=1"
	if v.cfg.FirmwarePXE && v.Firmware == UEFI {
		nic += ",romfile="
	}
	args = append(args, "-device", nic)
	if v.cfg.DiskMiB > 0 {
		disk := filepath.Join(v.Dir, "disk.raw")
		if err := blankDisk(disk, int64(v.cfg.DiskMiB)<<20); err != nil {
			return nil, err
		}
		args = append(args, "-drive", "if=none,id=disk0,format=raw,file="+disk,
			"-device", "virtio-blk-pci,drive=disk0,bootindex=2")
	}
	if len(v.BMCSocket) >= 108 {
		return nil, fmt.Errorf("testvm: socket path %s is too long for a unix socket; use a shorter Options.Dir", v.BMCSocket)
	}
	if v.Firmware == UEFI {
		vars := filepath.Join(v.Dir, "OVMF_VARS.fd")
		if err := copyFile(ovmfVars, vars); err != nil {
			return nil, err
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	if v.cfg.PoweredOff {
		args = append(args, "-S")
	}
	return args, nil
}

// blankDisk creates a sparse file of size bytes at path unless it exists:
// a VM's disk outlives its resets.
func blankDisk(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close quits QEMU (QMP quit, then signals), releases the VM slot and waits
// for the console to drain. Safe to call more than once.
func (v *VM) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	v.mu.Unlock()
	if v.QMP != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = v.QMP.Execute(ctx, "quit", nil)
		cancel()
	}
	if v.proc != nil {
		v.proc.Stop(3 * time.Second)
	}
	close(v.stop)
	v.wg.Wait()
	if v.QMP != nil {
		_ = v.QMP.Close()
	}
	var err error
	if v.slot != nil {
		err = v.slot.Close()
	}
	return err
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	return nil
}
