package sites_test

import (
	"context"
	"encoding/json"
	"path"
	"strings"
	"testing"

	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/sites"
)

const fuzzImage = `ignition: 3.3.0
mode: live
artifacts:
  kernel: {path: testnode/vmlinuz, sha256: 1111111111111111111111111111111111111111111111111111111111111111}
  initrd: {path: testnode/initrd, sha256: 2222222222222222222222222222222222222222222222222222222222222222}
`

const fuzzSite = `network:
  interface: uc0
  subnet: 10.99.0.0/24
  gateway: 10.99.0.1
  dhcp: {mode: authoritative, range: {start: 10.99.0.100, end: 10.99.0.199}}
image: testnode
cluster: {name: lab, api_vip: 10.99.0.10}
machines:
  - {name: m1, mac: "52:54:00:00:00:01", role: master, ip: 10.99.0.11}
`

// FuzzGate runs a site repo of fuzzed site.yaml, image and snippet through
// the loader, the gate (with the real Ignition renderer) and Render, as the
// server does for every new commit. Nothing panics; every problem names a
// file; and a version the gate accepts renders, for every machine and both
// etcd states, valid JSON whose units, files, directories and links all
// stay in their directories. (One machine in the seed site: a render takes
// tens of milliseconds, and the fuzzer's speed is the number of renders.)
func FuzzGate(f *testing.F) {
	f.Add(fuzzSite, fuzzImage, "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /etc/motd\n      contents: {inline: hi}\n", true)
	f.Add(fuzzSite, fuzzImage, "variant: fcos\nversion: 1.4.0\nsystemd:\n  units:\n    - name: ../../x.service\n      mask: true\n", true)
	f.Add(fuzzSite, fuzzImage, `{"ignition":{"version":"3.3.0"},"storage":{"links":[{"path":"/etc/x","target":"/../y","hard":true}]}}`, false)
	f.Add(fuzzSite, fuzzImage, `{"ignition":{"version":"3.0.0"},"systemd":{"units":[{"name":"a.service","dropins":[{"name":"../b.conf"}]}]}}`, false)
	f.Add(fuzzSite, strings.Replace(fuzzImage, "3.3.0", "3.0.0", 1), "variant: fcos\nversion: 1.0.0\n", true)
	f.Add(strings.Replace(fuzzSite, "10.99.0.11", "10.99.0.150", 1), fuzzImage, "", true)
	f.Add(fuzzSite+`  - {name: w1, mac: "52:54:00:00:01:01", role: worker, ip: 10.99.0.21}`+"\n", fuzzImage, "variant: fcos\nversion: 1.4.0\n", true)
	f.Add("machines: [", fuzzImage, "", true)
	f.Add(fuzzSite, "ignition: 3.3.0\nmode: live\nartifacts:\n  kernel: {path: /etc/shadow, sha256: x}\n", "", true)
	f.Add("a: &a [*a, *a, *a, *a]\n", fuzzImage, "variant: fcos\nversion: 1.4.0\n", true)

	f.Fuzz(func(t *testing.T, site, image, snippet string, butane bool) {
		files := sites.Files{
			"bindings.yaml":        []byte("lab: main\n"),
			"images/testnode.yaml": []byte(image),
			"sites/lab/site.yaml":  []byte(site),
		}
		if snippet != "" {
			name := "sites/lab/snippets/common.ign"
			if butane {
				name = "sites/lab/snippets/common.bu"
			}
			files[name] = []byte(snippet)
		}
		v := sites.Version{Commit: "0123456789abcdef0123456789abcdef01234567", Tags: []string{"v1"}}
		cfg, ps := sites.Load(files)
		if len(ps) == 0 {
			ps = sites.Gate{Renderer: ignition.Renderer{}}.Check(context.Background(), cfg, []string{"lab"}, v, nil)
		}
		for _, p := range ps {
			if p.File == "" || p.Message == "" {
				t.Fatalf("problem without a file or a message: %#v", p)
			}
		}
		if len(ps) > 0 {
			return
		}
		rel, err := cfg.Release("lab", v)
		if err != nil {
			t.Fatalf("accepted version has no release: %v", err)
		}
		for i := range rel.Site.Machines {
			m := &rel.Site.Machines[i]
			for _, boot := range []bool{false, true} {
				in := ignition.Input{Release: rel, Machine: m, Bootstrapped: boot}
				out, err := ignition.Render(in)
				if err != nil {
					t.Fatalf("accepted version does not render %s: %v", m.Name, err)
				}
				confinedOutput(t, out)
			}
		}
	})
}

// confinedOutput fails when a rendered config would write outside the
// directory a name or path belongs in.
func confinedOutput(t *testing.T, out []byte) {
	t.Helper()
	var c struct {
		Storage struct {
			Files, Directories, Links []struct{ Path string }
		}
		Systemd struct {
			Units []struct {
				Name    string
				Dropins []struct{ Name string }
			}
		}
	}
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("rendered config is not JSON: %v", err)
	}
	for _, u := range c.Systemd.Units {
		names := []string{u.Name}
		for _, d := range u.Dropins {
			names = append(names, d.Name)
		}
		for _, n := range names {
			if n == "" || strings.Contains(n, "/") || strings.Contains(n, "..") {
				t.Fatalf("rendered unit name %q escapes /etc/systemd/system", n)
			}
		}
	}
	for _, group := range [][]struct{ Path string }{c.Storage.Files, c.Storage.Directories, c.Storage.Links} {
		for _, e := range group {
			if !path.IsAbs(e.Path) || path.Clean(e.Path) != e.Path {
				t.Fatalf("rendered path %q is not absolute and clean", e.Path)
			}
		}
	}
}
