package testvm_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/undercloud/undercloud/testvm"
)

// A non-test program (make demo) builds a lab the same way: a server under
// test runs inside it, VMs boot against it, and the host reaches the UI
// through the host link at lab.FromHost. (Compiled, not run: it needs root
// and a server binary.)
func ExampleNewLab() {
	if err := demo(context.Background()); err != nil {
		fmt.Println("demo:", err)
	}
}

func demo(ctx context.Context) error {
	lab, err := testvm.NewLab(ctx, testvm.Options{
		Subnet:   netip.MustParsePrefix("10.99.0.0/24"),
		HostLink: true,
	})
	if err != nil {
		return err
	}
	defer lab.Close()

	// The server under test runs inside the namespace; on the bridge it is
	// lab.ServerAddr, from the host lab.FromHost.
	srv, err := lab.Start("undercloud", "/path/to/undercloud", "serve", "--listen", "0.0.0.0:8080", "--operator-listen", "0.0.0.0:8443")
	if err != nil {
		return err
	}
	fmt.Println("server log:", srv.Log)
	fmt.Printf("UI from the host: https://%s:8443/\n", lab.FromHost)

	vm, err := lab.StartVM(ctx, testvm.VMConfig{MAC: testvm.MAC(1), Firmware: testvm.UEFI, PoweredOff: true})
	if err != nil {
		return err
	}
	bmc, err := lab.StartBMC(ctx, vm, 0)
	if err != nil {
		return err
	}
	fmt.Println("BMC:", bmc.Addr, "ipmitool", bmc.IPMIToolArgs())
	if _, err := bmc.IPMITool(ctx, "chassis", "power", "on"); err != nil {
		return err
	}
	_, err = vm.WaitFor(ctx, testvm.MarkBootedUnit)
	return err
}
