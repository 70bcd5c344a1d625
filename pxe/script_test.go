package pxe

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pxe -run %s -update to create it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

const (
	testBase  = "http://10.0.0.1:8080"
	testToken = "AQAAAABl9xUAEGRlYWRiZWVmMDAwMDAwMDE" // shape only: Script does not check it
	kernelHex = "1111111111111111111111111111111111111111111111111111111111111111"
	initrdHex = "2222222222222222222222222222222222222222222222222222222222222222"
	rootfsHex = "3333333333333333333333333333333333333333333333333333333333333333"
	commit    = "3f9c2e1d0a7b4c5e6f708192a3b4c5d6e7f80912"
)

func knownTarget(mode string, pending bool) Target {
	return Target{
		Kind: TargetKnown, MAC: "52:54:00:12:34:56", Site: "paris-1", Machine: "m1", Role: "master",
		Version: commit, Mode: mode, RebuildPending: pending,
		Kernel: kernelHex, Initrd: initrdHex,
		KernelArgs: []string{"console=ttyS0,115200n8", "ignition.firstboot", "ignition.platform.id=metal"},
	}
}

func TestTargetAction(t *testing.T) {
	tests := map[string]struct {
		t    Target
		want Action
	}{
		"zero target":              {Target{}, ActionExit},
		"unknown":                  {Target{Kind: TargetNone, Mode: ModeLive}, ActionExit},
		"known live":               {knownTarget(ModeLive, false), ActionProvision},
		"known live pending":       {knownTarget(ModeLive, true), ActionProvision},
		"install installed":        {knownTarget(ModeInstall, false), ActionLocalDisk},
		"install rebuild pending":  {knownTarget(ModeInstall, true), ActionProvision},
		"discovery":                {Target{Kind: TargetDiscovery}, ActionDiscovery},
		"discovery of install img": {Target{Kind: TargetDiscovery, Mode: ModeInstall}, ActionDiscovery},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.t.Action(); got != tc.want {
				t.Errorf("Action() = %v, want %v", got, tc.want)
			}
			if got, want := tc.t.NeedsToken(), tc.want == ActionProvision; got != want {
				t.Errorf("NeedsToken() = %v, want %v", got, want)
			}
		})
	}
}

func TestScript(t *testing.T) {
	sc, err := ParseScripts()
	if err != nil {
		t.Fatal(err)
	}
	withRootfs := knownTarget(ModeLive, false)
	withRootfs.Rootfs = rootfsHex
	withRootfs.IgnitionArg = "coreos.inst.ignition_url"
	tests := map[string]struct {
		t     Target
		token string
	}{
		"known-live":              {knownTarget(ModeLive, false), testToken},
		"known-live-rootfs":       {withRootfs, testToken},
		"install-rebuild-pending": {knownTarget(ModeInstall, true), testToken},
		"install-local-disk":      {knownTarget(ModeInstall, false), ""},
		"unknown":                 {Target{MAC: "52:54:00:aa:bb:cc"}, ""},
		"discovery": {Target{
			Kind: TargetDiscovery, MAC: "52:54:00:aa:bb:cc", Site: "paris-1", Version: commit,
			Kernel: kernelHex, Initrd: initrdHex, KernelArgs: []string{"console=ttyS0"},
		}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := sc.Script(tc.t, testBase, tc.token)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "script-"+name+".ipxe", got)
			// No ignition URL or token where no config is due.
			if a := tc.t.Action(); a != ActionProvision && (strings.Contains(got, "ignition?") || strings.Contains(got, "token=")) {
				t.Errorf("%v script carries a config URL:\n%s", a, got)
			}
		})
	}
}

func TestChainScript(t *testing.T) {
	sc, err := ParseScripts()
	if err != nil {
		t.Fatal(err)
	}
	got, err := sc.Chain(testBase)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "chain.ipxe", got)
	for _, bad := range []string{"", "10.0.0.1:8080", "ftp://x", "http://x/", "http://x?a=b", "http://x\nboot", "http://a b", "http://${x}"} {
		if _, err := sc.Chain(bad); err == nil {
			t.Errorf("Chain(%q) accepted", bad)
		}
	}
}

// Script refuses whatever would let a value become an iPXE command or break
// a URL, and whatever would boot without what the boot needs.
func TestScriptRefuses(t *testing.T) {
	sc, err := ParseScripts()
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(*Target)) Target {
		tg := knownTarget(ModeLive, false)
		f(&tg)
		return tg
	}
	tests := map[string]struct {
		t     Target
		base  string
		token string
	}{
		"newline in kernel arg": {mod(func(t *Target) { t.KernelArgs = []string{"quiet\nshell"} }), testBase, testToken},
		"empty kernel arg":      {mod(func(t *Target) { t.KernelArgs = []string{""} }), testBase, testToken},
		"short kernel digest":   {mod(func(t *Target) { t.Kernel = "abc" }), testBase, testToken},
		"upper-case digest":     {mod(func(t *Target) { t.Initrd = strings.Repeat("A", 64) }), testBase, testToken},
		"bad rootfs digest":     {mod(func(t *Target) { t.Rootfs = "x" }), testBase, testToken},
		"no token":              {knownTarget(ModeLive, false), testBase, ""},
		"token with newline":    {knownTarget(ModeLive, false), testBase, "abc\nshell"},
		"no version":            {mod(func(t *Target) { t.Version = "" }), testBase, testToken},
		"version with space":    {mod(func(t *Target) { t.Version = "v1 shell" }), testBase, testToken},
		"version with amp":      {mod(func(t *Target) { t.Version = "v1&token=x" }), testBase, testToken},
		"no mode":               {mod(func(t *Target) { t.Mode = "" }), testBase, testToken},
		"machine newline":       {mod(func(t *Target) { t.Machine = "m1\nshell" }), testBase, testToken},
		"bad ignition arg":      {mod(func(t *Target) { t.IgnitionArg = "a=b" }), testBase, testToken},
		"non-canonical MAC":     {mod(func(t *Target) { t.MAC = "52-54-00-12-34-56" }), testBase, testToken},
		"no MAC":                {Target{}, testBase, ""},
		"bad base":              {knownTarget(ModeLive, false), "http://x/\n", testToken},
		"discovery no kernel":   {Target{Kind: TargetDiscovery, MAC: "52:54:00:aa:bb:cc", Initrd: initrdHex}, testBase, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got, err := sc.Script(tc.t, tc.base, tc.token); err == nil {
				t.Fatalf("Script accepted it:\n%s", got)
			}
		})
	}
}
