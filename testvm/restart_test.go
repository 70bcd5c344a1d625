package testvm_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/undercloud/undercloud/testvm"
)

// TestRestartBetweenScriptAndConfig: a machine assigned v1 keeps booting v1
// after v2 activates; its boot script names v1 in the token, the server
// restarts (kill -9) before the machine asks for its config, and the new
// process still serves v1's config for that token. No VM: the requests
// come from the machine's reserved address inside the lab, as iPXE's
// would, since only those are minted a token and served a config.
func TestRestartBetweenScriptAndConfig(t *testing.T) {
	ctx := context.Background()
	lab := testvm.NewTestLab(t, testvm.Options{})
	repo := exampleRepo(t)
	srv := startServer(t, lab, repo)
	v1, v2 := commitOf(t, repo, "v1"), commitOf(t, repo, "v2")
	waitFor(t, 30*time.Second, "lab active at v1", func() bool { return srv.activeCommit("lab") == v1 })

	m := labMachines[1] // lab-w1: a worker, so its config is rendered at any etcd state
	if _, err := lab.Run(ctx, "ip", "addr", "add", m.ip+"/32", "dev", lab.Bridge); err != nil {
		t.Fatal(err)
	}
	machine := clientFrom(lab, netip.MustParseAddr(m.ip))
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := machine.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		return resp.StatusCode, string(body)
	}
	ignitionURL := regexp.MustCompile(`https?://[^\s=]+/ignition\?\S+`)
	script := func(step string) string {
		t.Helper()
		code, body := get(srv.url() + "/ipxe?mac=" + m.mac)
		u := ignitionURL.FindString(body)
		if code != http.StatusOK || u == "" || !strings.Contains(u, "version="+v1+"&") {
			t.Fatalf("%s: /ipxe = %d, want a provisioning script of v1 %s with a config URL:\n%s", step, code, v1, body)
		}
		return u
	}

	script("first boot") // assigns v1
	if _, err := repo.Bind("lab", "v2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "lab active at v2", func() bool { return srv.activeCommit("lab") == v2 })
	u := script("boot after v2 activated") // the machine keeps v1

	srv.kill9()
	srv.start()
	if got := srv.activeCommit("lab"); got != v2 {
		t.Fatalf("active version after the restart = %s, want v2 %s", got, v2)
	}
	code, body := get(u)
	if code != http.StatusOK {
		t.Fatalf("config after the restart: %d, want 200 (the token names v1, accepted before the restart)\n%s", code, body)
	}
	want := renderedFiles(t, repo, "v1", "lab", m.name, false)["/etc/motd"]
	if got := motdOf(t, body); got != want || strings.Contains(got, "config v2") {
		t.Fatalf("config after the restart has /etc/motd %q, want v1's %q", got, want)
	}
}

// clientFrom is an HTTP client whose connections are opened inside the lab
// from src, an address the caller added to the lab.
func clientFrom(lab *testvm.Lab, src netip.Addr) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := lab.Do(func() error {
			d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

// motdOf is the /etc/motd a served config writes.
func motdOf(t *testing.T, config string) string {
	t.Helper()
	var c struct {
		Storage struct {
			Files []struct {
				Path     string
				Contents struct{ Source *string }
			}
		}
	}
	if err := json.Unmarshal([]byte(config), &c); err != nil {
		t.Fatalf("served config is not JSON: %v", err)
	}
	for _, f := range c.Storage.Files {
		if f.Path == "/etc/motd" && f.Contents.Source != nil {
			return dataURL(t, *f.Contents.Source)
		}
	}
	return ""
}
