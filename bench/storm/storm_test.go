package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// genEnv makes the test binary the load generator: the storm runs it
// again inside the machines' namespace with this variable set.
const genEnv = "UNDERCLOUD_STORM_GEN=1"

func TestMain(m *testing.M) {
	if os.Getenv("UNDERCLOUD_STORM_GEN") == "1" {
		if err := genMain(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestStormInventory powers on 50 machines at once against the real
// undercloud binary and checks that the inventory holds exactly 50
// provisioned machines, each with every step of its boot. Correctness only:
// no figure is asserted.
func TestStormInventory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces")
	}
	for _, tool := range []string{"ip", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (make deps)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := options{Bin: undercloudBin(t), Rounds: 1, Ramp: 500 * time.Millisecond, Conns: 64,
		KernelMiB: 1, InitrdMiB: 2, RootfsMiB: 1, Gen: []string{self}, GenEnv: []string{genEnv}}
	var log bytes.Buffer
	r, err := setup(ctx, o, &log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	const n = 50
	ms, racks := machines(n)
	if err := r.prepare(ctx, ms, racks, nil); err != nil {
		t.Fatal(err)
	}
	res, err := r.undercloudRound(ctx, ms, "uc-test", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(roundLine(1, res))
	if res.Failed > 0 {
		t.Errorf("%d of %d machines failed: %s", res.Failed, n, strings.Join(res.FirstErrs, "\n"))
	}
	if res.Check == nil || len(res.Check.Problems) > 0 {
		t.Errorf("inventory check: %v", res.Check)
	}
	// Kernel, initrd and rootfs (a second initrd, or fetched by the node
	// from a kernel argument and checked against its digest): 4 MiB each.
	if want := int64(n) * 4 << 20; res.Bytes < want {
		t.Errorf("the machines received %d bytes, want at least %d", res.Bytes, want)
	}
}

// undercloudBin is UNDERCLOUD_BIN (make test sets it), else a build of
// this tree.
func undercloudBin(t *testing.T) string {
	if b := os.Getenv("UNDERCLOUD_BIN"); b != "" {
		return b
	}
	bin := filepath.Join(t.TempDir(), "undercloud")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/undercloud/undercloud/cmd/undercloud").CombinedOutput()
	if err != nil {
		t.Fatalf("build undercloud: %v\n%s", err, out)
	}
	return bin
}

func TestPlan(t *testing.T) {
	vars := map[string]string{"mac": "52:54:01:00:00:01", "uuid": "u", "buildarch": "x86_64", "platform": "efi"}
	tests := map[string]struct {
		script  string
		want    bootPlan
		wantErr string
	}{
		"server only, rootfs by kernel argument": {
			script: "#!ipxe\n# undercloud: storm/n1\nkernel http://s/images/sha256/k?mac=${mac} initrd=initrd quiet coreos.live.rootfs_url=http://s/images/sha256/r ignition.config.url=http://s/ignition?mac=52:54:01:00:00:01&version=v&token=t\n" +
				"initrd --name initrd http://s/images/sha256/i?mac=52:54:01:00:00:01\nboot\n",
			want: bootPlan{
				Kernel: []kernelAlt{{URL: "http://s/images/sha256/k?mac=52:54:01:00:00:01", Args: []string{"initrd=initrd", "quiet",
					"coreos.live.rootfs_url=http://s/images/sha256/r", "ignition.config.url=http://s/ignition?mac=52:54:01:00:00:01&version=v&token=t"}}},
				Initrds: [][]string{{"http://s/images/sha256/i?mac=52:54:01:00:00:01"}},
			},
		},
		"mirror first, the server as fallback": {
			script: "#!ipxe\nkernel http://m/images/sha256/k initrd=initrd a=1 || kernel http://s/images/sha256/k?mac=x initrd=initrd a=2\n" +
				"initrd --name initrd http://m/images/sha256/i || initrd --name initrd http://s/images/sha256/i?mac=x\nboot\n",
			want: bootPlan{
				Kernel: []kernelAlt{
					{URL: "http://m/images/sha256/k", Args: []string{"initrd=initrd", "a=1"}},
					{URL: "http://s/images/sha256/k?mac=x", Args: []string{"initrd=initrd", "a=2"}},
				},
				Initrds: [][]string{{"http://m/images/sha256/i", "http://s/images/sha256/i?mac=x"}},
			},
		},
		"unknown machine": {
			script:  "#!ipxe\n# undercloud: unknown\necho undercloud: 52:54:01:00:00:01 is not a known machine, nothing to boot\nexit\n",
			wantErr: "script does exit instead of booting a kernel: undercloud: 52:54:01:00:00:01 is not a known machine, nothing to boot",
		},
		"installed": {
			script:  "#!ipxe\necho installed\nsanboot --no-describe --drive 0x80 || exit\n",
			wantErr: "script does sanboot instead of booting a kernel: installed",
		},
		"not a script": {script: "<html>", wantErr: "not an iPXE script"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := parseScript(tc.script)
			var got bootPlan
			if err == nil {
				got, err = s.plan(vars)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChainURL(t *testing.T) {
	chain := "#!ipxe\n# undercloud\n:retry\nchain http://10.0.0.1:8080/ipxe?mac=${mac}&uuid=${uuid}&serial=${serial:uristring}&arch=${buildarch}&platform=${platform} || goto failed\nexit\n:failed\necho again\nsleep 5\ngoto retry\n"
	s, err := parseScript(chain)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.chainURL(map[string]string{"mac": "52:54:01:00:00:01", "uuid": "u-1", "buildarch": "x86_64", "platform": "efi"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://10.0.0.1:8080/ipxe?mac=52:54:01:00:00:01&uuid=u-1&serial=&arch=x86_64&platform=efi"; got != want {
		t.Errorf("chain URL %q, want %q", got, want)
	}
}

func TestBootedURL(t *testing.T) {
	const booted = "http://10.0.0.1:8080/booted?mac=52:54:01:00:00:01&version=abc&token=T-1"
	env := "UNDERCLOUD_BOOTED_URL=" + booted + "\nUNDERCLOUD_HEARTBEAT_URL=http://10.0.0.1:8080/heartbeat?x=1\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(env))
	zw.Close()
	file := func(source, compression string) string {
		c := ""
		if compression != "" {
			c = fmt.Sprintf(`, "compression": %q`, compression)
		}
		return `{"ignition": {"version": "3.3.0"}, "storage": {"files": [
			{"path": "/etc/hostname", "contents": {"source": "data:,n1%0A"}},
			{"path": "/etc/undercloud/report.env", "contents": {"source": "` + source + `"` + c + `}}]}}`
	}
	tests := map[string]struct {
		config  string
		args    []string
		want    string
		wantErr bool
	}{
		"env file, percent-encoded": {config: file("data:,"+strings.NewReplacer("\n", "%0A", "&", "%26").Replace(env), "")},
		"env file, base64":          {config: file("data:text/plain;base64,"+base64.StdEncoding.EncodeToString([]byte(env)), "")},
		"env file, gzip":            {config: file("data:;base64,"+base64.StdEncoding.EncodeToString(gz.Bytes()), "gzip")},
		"unit ExecStart, systemd-quoted": {config: `{"systemd": {"units": [{"name": "undercloud-booted.service",
			"contents": "[Service]\nExecStart=/usr/bin/curl -fsS -X POST \"http://10.0.0.1:8080/booted?mac=52:54:01:00:00:01&version=abc&token=T%%2D1\"\n"}]}}`,
			want: "http://10.0.0.1:8080/booted?mac=52:54:01:00:00:01&version=abc&token=T%2D1"},
		"kernel argument":  {config: `{"ignition": {"version": "3.3.0"}}`, args: []string{"quiet", "undercloud.booted=" + booted}},
		"config wins":      {config: file("data:,"+strings.NewReplacer("\n", "%0A", "&", "%26").Replace(env), ""), args: []string{"undercloud.booted=http://old/booted?x=1"}},
		"nowhere":          {config: `{"ignition": {"version": "3.3.0"}}`, args: []string{"quiet"}, wantErr: true},
		"not even JSON":    {config: `<html>`, wantErr: true},
		"no query is none": {config: file("data:,http://10.0.0.1:8080/booted", ""), wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, _, err := bootedURL([]byte(tc.config), tc.args)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want == "" {
				want = booted
			}
			if got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestDigestOf(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for url, want := range map[string]string{
		"http://s/images/sha256/" + hex + "?mac=x": hex,
		"http://m/images/sha256/" + hex:            hex,
		"http://s/images/sha256/abc":               "",
		"http://s/ignition?mac=x":                  "",
	} {
		if got := digestOf(url); got != want {
			t.Errorf("digestOf(%q) = %q, want %q", url, got, want)
		}
	}
}
