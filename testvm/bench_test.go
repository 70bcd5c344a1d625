package testvm_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/undercloud/undercloud/testvm"
)

// BenchmarkBoot boots the same VM (lab-w1's MAC, BIOS, the test image, the
// same Ignition config) through undercloud and through the baseline --
// dnsmasq for DHCP and TFTP plus a static HTTP server, the lab recipe -- in
// one run, alternating, and reports both medians and their ratio. Each boot is
// a fresh VM, timed from power-on to systemd finishing the served config's
// booted unit (its POST answered).
// UNDERCLOUD_BENCH_BOOTS sets the boots per server (default 5).
func BenchmarkBoot(b *testing.B) {
	n := 5
	if v, err := strconv.Atoi(os.Getenv("UNDERCLOUD_BENCH_BOOTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	m := labMachines[1]
	repo := exampleRepo(b)
	ucLab := testvm.NewTestLab(b, testvm.Options{})
	startServer(b, ucLab, repo)
	baseLab := testvm.NewTestLab(b, testvm.Options{})
	v1 := commitOf(b, repo, "v1")
	base, err := testvm.StartBaseline(ctx, baseLab, testvm.BaselineConfig{
		Image: image(b), Ignition: renderConfig(b, repo, "v1", "lab", m.name, false), Version: v1,
	})
	if err != nil {
		b.Fatal(err)
	}
	_ = base
	boot := func(lab *testvm.Lab, name string) time.Duration {
		vm := lab.StartTestVM(b, testvm.VMConfig{Name: name, MAC: mustMAC(b, m.mac)})
		defer vm.Close()
		line, err := vm.WaitFor(ctx, testvm.MarkBootedUnit)
		if err != nil {
			b.Fatal(err)
		}
		return line.Time.Sub(vm.BootStarted())
	}
	var uc, bl []float64
	for range b.N {
		for i := range n {
			// Alternate which goes first, so drift in the machine's load
			// falls on both.
			if i%2 == 0 {
				uc = append(uc, boot(ucLab, fmt.Sprintf("uc%d", i)).Seconds())
				bl = append(bl, boot(baseLab, fmt.Sprintf("base%d", i)).Seconds())
			} else {
				bl = append(bl, boot(baseLab, fmt.Sprintf("base%d", i)).Seconds())
				uc = append(uc, boot(ucLab, fmt.Sprintf("uc%d", i)).Seconds())
			}
		}
	}
	mu, mb := median(uc), median(bl)
	b.ReportMetric(mu, "s/boot-undercloud")
	b.ReportMetric(mb, "s/boot-baseline")
	b.ReportMetric(mu/mb, "ratio")
	fmt.Printf("bench-boot: %d BIOS boots each, power-on to booted POST\n", len(uc))
	fmt.Printf("  undercloud                   median %.2fs  %v\n", mu, rounded(uc))
	fmt.Printf("  dnsmasq + static HTTP        median %.2fs  %v\n", mb, rounded(bl))
	fmt.Printf("  ratio undercloud/baseline = %.3f (target <= 1.05)\n", mu/mb)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rounded(xs []float64) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%.1f", x)
	}
	return out
}
