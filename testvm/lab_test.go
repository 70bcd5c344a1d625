package testvm_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/undercloud/undercloud/testvm"
)

// TestHostLink serves HTTP from a listener inside the lab and reaches it from
// the host through the veth pair, as `make demo`'s browser will; the same
// port on host loopback must not answer (the namespace is private).
func TestHostLink(t *testing.T) {
	lab := testvm.NewTestLab(t, testvm.Options{HostLink: true})
	if !lab.FromHost.IsValid() || !lab.HostAddr.IsValid() {
		t.Fatalf("host link addresses %v %v", lab.FromHost, lab.HostAddr)
	}
	ln, err := lab.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "inside "+r.Host)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + netip.AddrPortFrom(lab.FromHost, port).String() + "/")
	if err != nil {
		t.Fatalf("from the host: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.HasPrefix(string(body), "inside ") {
		t.Errorf("body %q", body)
	}
	if conn, err := net.DialTimeout("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String(), time.Second); err == nil {
		_ = conn.Close()
		t.Errorf("the lab's listener answers on host loopback")
	}
}

// TestRouterAdvertisement listens on the far end of the bridge's carrier
// veth, as a VM would: an RA must come within a second of a router
// solicitation, with no M/O flags (iPXE then skips DHCPv6) and router
// lifetime 0 (nobody routes through the lab).
func TestRouterAdvertisement(t *testing.T) {
	lab := testvm.NewTestLab(t, testvm.Options{})
	var fd int
	err := lab.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "carrier1"); err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
		t.Fatal(err)
	}
	// carrier1's link-local address is what an RS is sent from.
	var ifindex int
	if err := lab.Do(func() error {
		ifi, err := net.InterfaceByName("carrier1")
		if err == nil {
			ifindex = ifi.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	allRouters := &unix.SockaddrInet6{ZoneId: uint32(ifindex)}
	copy(allRouters.Addr[:], net.ParseIP("ff02::2"))
	var sent time.Time
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if sent.IsZero() || time.Since(sent) > time.Second {
			// The link-local address may still be coming up: retry.
			if err := unix.Sendto(fd, []byte{133, 0, 0, 0, 0, 0, 0, 0}, 0, allRouters); err == nil {
				sent = time.Now()
			}
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n < 16 || buf[0] != 134 || sent.IsZero() {
			continue
		}
		d := time.Since(sent)
		if d > time.Second {
			t.Errorf("RA %s after the solicitation", d)
		}
		t.Logf("RA %s after the solicitation", d)
		if flags, lifetime := buf[5], binary.BigEndian.Uint16(buf[6:8]); flags != 0 || lifetime != 0 {
			t.Errorf("RA flags %#x lifetime %d, want 0 and 0", flags, lifetime)
		}
		return
	}
	t.Fatal("no router advertisement within 5s")
}

func TestFilesDigest(t *testing.T) {
	tests := map[string]struct {
		files map[string]string
		want  string
	}{
		// printf '/a 1111\n/etc/hostname 2222\n' | sha256sum
		"sorted lines": {
			files: map[string]string{"/etc/hostname": "2222", "/a": "1111"},
			want:  "2d74599954b06f93fc895984fd31a8a15d86802cae1be1b1f3eb72e3ae715ac3",
		},
		// printf '' | sha256sum
		"nothing written": {
			files: map[string]string{},
			want:  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := testvm.FilesDigest(tc.files); got != tc.want {
				t.Errorf("FilesDigest = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	lab := testvm.NewTestLab(t, testvm.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := lab.StartVM(ctx, testvm.VMConfig{}); err == nil {
		t.Error("StartVM without a MAC succeeded")
	}
	if _, err := lab.Run(ctx, "no-such-tool-xyz"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Run of a missing tool: %v", err)
	}
	out, err := lab.Run(ctx, "ip", "-br", "addr", "show", "dev", lab.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), lab.ServerAddr.String()) {
		t.Errorf("bridge addresses %q lack %s", out, lab.ServerAddr)
	}
}

// TestWaitForFailsFast checks that WaitFor gives up at once when QEMU exits
// and when the boot's deadline passes, instead of running out the caller's
// context. The VMs stay powered off (QEMU -S), so this costs no boot.
func TestWaitForFailsFast(t *testing.T) {
	lab := testvm.NewTestLab(t, testvm.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	vm := lab.StartTestVM(t, testvm.VMConfig{MAC: testvm.MAC(4), PoweredOff: true})
	if st, err := vm.Status(ctx); err != nil || st.Status != "prelaunch" {
		t.Fatalf("status %+v, %v; want prelaunch", st, err)
	}
	if _, err := vm.QMP.Execute(ctx, "quit", nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := vm.WaitFor(ctx, "never printed")
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("WaitFor after QEMU quit: %v, want an exit error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("WaitFor took %s to notice QEMU exited", d)
	}

	vm2 := lab.StartTestVM(t, testvm.VMConfig{MAC: testvm.MAC(5), PoweredOff: true, BootTimeout: time.Second})
	start = time.Now()
	_, err = vm2.WaitFor(ctx, "never printed")
	if err == nil || !strings.Contains(err.Error(), "boot timeout") {
		t.Errorf("WaitFor past BootTimeout: %v, want a boot timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("WaitFor took %s for a 1s boot timeout", d)
	}
}
