package testvm_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/undercloud/undercloud/testvm"
)

// TestIPMIPower drives a powered-off VM through its lab BMC with the real
// ipmitool over IPMI v2 (lanplus): power status follows QMP, power on boots
// it, bootdev is recorded, power reset gives a second PXE boot on the serial
// console, power off stops it.
func TestIPMIPower(t *testing.T) {
	t.Parallel()
	img := image(t)
	lab := testvm.NewTestLab(t, testvm.Options{Subnet: netip.MustParsePrefix("10.99.2.0/24")})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if _, err := testvm.StartBaseline(ctx, lab, testvm.BaselineConfig{
		Image: img, Ignition: []byte(`{"ignition":{"version":"3.3.0"}}`), Version: version,
	}); err != nil {
		t.Fatal(err)
	}
	vm := lab.StartTestVM(t, testvm.VMConfig{MAC: testvm.MAC(3), PoweredOff: true})
	bmc, err := lab.StartBMC(ctx, vm, 0)
	if err != nil {
		t.Fatal(err)
	}
	ipmi := func(args ...string) string {
		t.Helper()
		out, err := bmc.IPMITool(ctx, args...)
		if err != nil {
			t.Fatalf("ipmitool %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	status := func(wantIPMI string, wantRunning bool) {
		t.Helper()
		if got := ipmi("chassis", "power", "status"); got != "Chassis Power is "+wantIPMI {
			t.Errorf("power status %q, want %q", got, "Chassis Power is "+wantIPMI)
		}
		st, err := vm.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Running != wantRunning {
			t.Errorf("QMP status %+v, want running=%v", st, wantRunning)
		}
	}
	// iPXE's own lines: it started, and DHCP gave it the baseline's script.
	banner, pxeAnswered := "iPXE initialising devices", "Filename: http://"

	status("off", false)
	ipmi("chassis", "bootdev", "pxe")
	if got, err := bmc.BootDevices(); err != nil || !slices.Equal(got, []string{"pxe"}) {
		t.Errorf("boot devices %q (%v), want [pxe]", got, err)
	}

	ipmi("chassis", "power", "on")
	status("on", true)
	if _, err := vm.WaitFor(ctx, pxeAnswered); err != nil {
		t.Fatalf("no PXE boot after power on: %v", err)
	}
	reset := time.Now()
	ipmi("chassis", "power", "reset")
	if _, err := vm.WaitFor(ctx, banner); err != nil {
		t.Fatalf("no second PXE boot after power reset: %v", err)
	}
	l, err := vm.WaitFor(ctx, pxeAnswered)
	if err != nil {
		t.Fatalf("no second PXE boot after power reset: %v", err)
	}
	t.Logf("power reset → iPXE got its boot file name again after %.1fs", l.Time.Sub(reset).Seconds())
	if n := vm.Console.Count(banner); n != 2 {
		t.Errorf("%d iPXE boots on the console, want 2", n)
	}
	status("on", true)

	ipmi("chassis", "power", "off")
	status("off", false)
	reqs, err := bmc.Requests()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chassis_control calls: %q", reqs)
}
