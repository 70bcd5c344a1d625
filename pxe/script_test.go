package pxe

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
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
	testBase   = "http://10.0.0.1:8080"
	testMirror = "http://10.99.1.2:8081/cache"
	testToken  = "AQAAAABl9xUAEGRlYWRiZWVmMDAwMDAwMDE" // shape only: Script does not check it
	kernelHex  = "1111111111111111111111111111111111111111111111111111111111111111"
	initrdHex  = "2222222222222222222222222222222222222222222222222222222222222222"
	rootfsHex  = "3333333333333333333333333333333333333333333333333333333333333333"
	commit     = "3f9c2e1d0a7b4c5e6f708192a3b4c5d6e7f80912"
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
	mirrored := knownTarget(ModeLive, false)
	mirrored.Rootfs, mirrored.RootfsArg, mirrored.Mirror = rootfsHex, "live.rootfs", testMirror
	tests := map[string]struct {
		t     Target
		token string
	}{
		"known-live":              {knownTarget(ModeLive, false), testToken},
		"known-live-rootfs":       {withRootfs, testToken},
		"known-live-mirror":       {mirrored, testToken},
		"install-rebuild-pending": {knownTarget(ModeInstall, true), testToken},
		"install-local-disk":      {knownTarget(ModeInstall, false), ""},
		"unknown":                 {Target{MAC: "52:54:00:aa:bb:cc"}, ""},
		"discovery": {Target{
			Kind: TargetDiscovery, MAC: "52:54:00:aa:bb:cc", Site: "paris-1", Version: commit,
			Kernel: kernelHex, Initrd: initrdHex, KernelArgs: []string{"console=ttyS0"},
		}, ""},
		"discovery-mirror": {Target{
			Kind: TargetDiscovery, MAC: "52:54:00:aa:bb:cc", Site: "paris-1", Version: commit,
			Kernel: kernelHex, Initrd: initrdHex, Rootfs: rootfsHex, KernelArgs: []string{"console=ttyS0"},
			Mirror: testMirror,
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
			// The node reports back by itself (its Ignition config says
			// where): the script passes no callback.
			if strings.Contains(got, "undercloud.") {
				t.Errorf("script passes an undercloud.* kernel argument:\n%s", got)
			}
			// The rootfs is the node's to fetch, never an iPXE initrd.
			if strings.Contains(got, "initrd=rootfs") || strings.Contains(got, "--name rootfs") {
				t.Errorf("script loads the rootfs as an initrd:\n%s", got)
			}
		})
	}
}

// With a mirror, iPXE fetches the kernel and the initrd from it and from
// the server when that fails; the mirror's URLs carry no ?mac= (one cache
// entry for every machine), the server's do (its artifact event); the
// rootfs URL names the mirror, without a query.
func TestScriptMirror(t *testing.T) {
	sc, err := ParseScripts()
	if err != nil {
		t.Fatal(err)
	}
	mirrored := knownTarget(ModeLive, false)
	mirrored.Rootfs, mirrored.Mirror = rootfsHex, testMirror
	discovery := Target{Kind: TargetDiscovery, MAC: "52:54:00:aa:bb:cc", Kernel: kernelHex, Initrd: initrdHex,
		Rootfs: rootfsHex, Mirror: testMirror}
	for name, tg := range map[string]Target{"provision": mirrored, "discovery": discovery} {
		t.Run(name, func(t *testing.T) {
			got, err := sc.Script(tg, testBase, testToken)
			if err != nil {
				t.Fatal(err)
			}
			var kernel, initrd []string
			for _, line := range strings.Split(got, "\n") {
				switch f := strings.Fields(line); {
				case len(f) > 0 && f[0] == "kernel":
					kernel = f
				case len(f) > 0 && f[0] == "initrd":
					initrd = f
				}
			}
			mac := "?mac=" + tg.MAC
			wantKernel := []string{testMirror + "/images/sha256/" + kernelHex, testBase + "/images/sha256/" + kernelHex + mac}
			if diff := cmp.Diff(wantKernel, tried(kernel, "kernel")); diff != "" {
				t.Errorf("kernel URLs tried (-want +got):\n%s\n%s", diff, got)
			}
			wantInitrd := []string{testMirror + "/images/sha256/" + initrdHex, testBase + "/images/sha256/" + initrdHex + mac}
			if diff := cmp.Diff(wantInitrd, tried(initrd, "initrd")); diff != "" {
				t.Errorf("initrd URLs tried (-want +got):\n%s\n%s", diff, got)
			}
			// Both kernel commands boot with the same command line.
			if i := slices.Index(kernel, "||"); i < 0 || !slices.Equal(kernel[2:i], kernel[i+3:]) {
				t.Errorf("the fallback kernel's arguments differ from the mirror's:\n%s", got)
			}
			rootfs := DefaultRootfsArg + "=" + testMirror + "/images/sha256/" + rootfsHex
			if n := strings.Count(got, " "+rootfs+" ") + strings.Count(got, " "+rootfs+"\n"); n != 2 {
				t.Errorf("%s appears %d times, want once per kernel command:\n%s", rootfs, n, got)
			}
		})
	}
}

// tried returns the URLs a line "cmd [--name x] URL args || cmd ..." tries.
func tried(fields []string, cmd string) []string {
	var urls []string
	for i, f := range fields {
		if f != cmd || (i > 0 && fields[i-1] != "||") {
			continue
		}
		j := i + 1
		if j < len(fields) && fields[j] == "--name" {
			j += 2
		}
		if j < len(fields) {
			urls = append(urls, fields[j])
		}
	}
	return urls
}

func TestScriptRootfsArg(t *testing.T) {
	sc, err := ParseScripts()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ arg, want string }{
		"default": {"", DefaultRootfsArg + "=" + testBase + "/images/sha256/" + rootfsHex + " "},
		"image's": {"live.rootfs", " live.rootfs=" + testBase + "/images/sha256/" + rootfsHex + " "},
	} {
		t.Run(name, func(t *testing.T) {
			tg := knownTarget(ModeLive, false)
			tg.Rootfs, tg.RootfsArg = rootfsHex, tc.arg
			got, err := sc.Script(tg, testBase, testToken)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("script lacks %q:\n%s", tc.want, got)
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
		"bad rootfs arg":        {mod(func(t *Target) { t.Rootfs, t.RootfsArg = rootfsHex, "a b" }), testBase, testToken},
		"mirror with newline":   {mod(func(t *Target) { t.Mirror = "http://m\nshell" }), testBase, testToken},
		"mirror with slash":     {mod(func(t *Target) { t.Mirror = "http://m/" }), testBase, testToken},
		"mirror with query":     {mod(func(t *Target) { t.Mirror = "http://m?a=b" }), testBase, testToken},
		"mirror not http":       {mod(func(t *Target) { t.Mirror = "ftp://m" }), testBase, testToken},
		"mirror with variable":  {mod(func(t *Target) { t.Mirror = "http://${net0/ip}" }), testBase, testToken},
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
