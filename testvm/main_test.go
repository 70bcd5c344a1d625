package testvm_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/undercloud/undercloud/testvm"
)

// TestMain builds the test image once (build.sh is idempotent; the tests load
// it), runs the tests, then asserts that nothing the labs started outlived
// them: no namespace, no QEMU, no dnsmasq, no ipmi_sim.
func TestMain(m *testing.M) {
	if err := buildImage(); err != nil {
		fmt.Fprintln(os.Stderr, "testvm:", err)
		os.Exit(1)
	}
	code := m.Run()
	left, err := testvm.Leftovers(os.Getpid())
	if err != nil {
		fmt.Fprintln(os.Stderr, "testvm: leftovers:", err)
		code = 1
	}
	for _, l := range left {
		fmt.Fprintln(os.Stderr, "testvm: LEFT BEHIND:", l)
		code = 1
	}
	os.Exit(code)
}

func buildImage() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("these tests boot VMs in network namespaces and must run as root")
	}
	dir, err := testvm.DefaultImageDir()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if _, err := testvm.BuildImage(ctx, dir); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "testvm: test image in %s ready after %.1fs\n", dir, time.Since(start).Seconds())
	return nil
}

// image loads the image TestMain built.
func image(t testing.TB) testvm.Image {
	t.Helper()
	dir, err := testvm.DefaultImageDir()
	if err != nil {
		t.Fatal(err)
	}
	img, err := testvm.LoadImage(dir)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
