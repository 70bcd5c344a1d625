package ignition

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/undercloud/undercloud/sites"
)

// The fixtures are site repo files, loaded by the real loader, so the tests
// see what the gate and the server will see.

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJs2+d+IrZ8RrG0Jh5IDB6Uvd4BeaY70FKonx+t0ctS8 test@lab"

const testImage = `ignition: SPEC
mode: live
artifacts:
  kernel:
    path: testnode/vmlinuz
    sha256: 1111111111111111111111111111111111111111111111111111111111111111
  initrd:
    path: testnode/initrd
    sha256: 2222222222222222222222222222222222222222222222222222222222222222
`

// testSite has three masters (m2 before m1 in the file, to show that file
// order, not name order, makes --initial-cluster), a worker on the site
// subnet and one behind a DHCP relay.
const testSite = `network:
  interface: uc0
  subnet: 10.99.0.0/24
  gateway: 10.99.0.1
  dns: [10.99.0.2, 10.99.0.3]
  domain: lab.example
  relays:
    - subnet: 10.99.1.0/24
      gateway: 10.99.1.1
image: testnode
cluster:
  name: lab-cluster
  api_vip: 10.99.0.10
ssh_keys:
  - ` + testKey + `
machines:
  - {name: m2, mac: "52:54:00:00:00:02", role: master, ip: 10.99.0.12}
  - {name: m1, mac: "52:54:00:00:00:01", role: master, ip: 10.99.0.11}
  - {name: m3, mac: "52:54:00:00:00:03", role: master, ip: 10.99.0.13}
  - {name: w1, mac: "52:54:00:00:01:01", role: worker, ip: 10.99.0.21}
  - {name: w2, mac: "52:54:00:00:01:02", role: worker, ip: 10.99.1.22}
`

var testVersion = sites.Version{Commit: "0123456789abcdef0123456789abcdef01234567", Tags: []string{"v7"}}

// repo returns the files of a one-site repo whose image declares spec;
// extra adds or replaces files (snippets go under sites/lab/snippets/).
func repo(spec string, extra map[string]string) sites.Files {
	f := sites.Files{
		"images/testnode.yaml": []byte(strings.Replace(testImage, "SPEC", spec, 1)),
		"sites/lab/site.yaml":  []byte(testSite),
		"bindings.yaml":        []byte("lab: main\n"),
	}
	for name, data := range extra {
		f[name] = []byte(data)
	}
	return f
}

// load runs the real loader and fails on any problem of form.
func load(t *testing.T, files sites.Files) *sites.Config {
	t.Helper()
	cfg, ps := sites.Load(files)
	if len(ps) > 0 {
		t.Fatalf("fixture does not load:\n%v", ps)
	}
	return cfg
}

// input builds the Input of one machine of the lab site.
func input(t *testing.T, files sites.Files, machine string, bootstrapped bool) Input {
	t.Helper()
	rel, err := load(t, files).Release("lab", testVersion)
	if err != nil {
		t.Fatal(err)
	}
	m := rel.Site.Machine(machine)
	if m == nil {
		t.Fatalf("no machine %s in fixture", machine)
	}
	return Input{Release: rel, Machine: m, Bootstrapped: bootstrapped}
}

// rendered is the part of a config of any spec the tests look at.
type rendered struct {
	Ignition struct{ Version string }
	Passwd   struct {
		Users []struct {
			Name              string
			SSHAuthorizedKeys []string
		}
	}
	Storage struct {
		Files []struct {
			Path     string
			Mode     *int
			Contents struct {
				Source      *string
				Compression *string
			}
		}
	}
	Systemd struct {
		Units []struct {
			Name     string
			Enabled  *bool
			Contents *string
		}
	}
}

func decode(t *testing.T, out []byte) rendered {
	t.Helper()
	var r rendered
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	return r
}

// file returns the decoded contents and mode of path, failing if absent.
func (r rendered) file(t *testing.T, path string) (string, int) {
	t.Helper()
	for _, f := range r.Storage.Files {
		if f.Path != path {
			continue
		}
		if f.Contents.Source == nil || f.Contents.Compression != nil && *f.Contents.Compression != "" {
			t.Fatalf("%s: no plain inline contents", path)
		}
		mode := -1
		if f.Mode != nil {
			mode = *f.Mode
		}
		return decodeDataURL(t, *f.Contents.Source), mode
	}
	t.Fatalf("config has no file %s", path)
	return "", 0
}

func (r rendered) hasFile(path string) bool {
	for _, f := range r.Storage.Files {
		if f.Path == path {
			return true
		}
	}
	return false
}

// unit returns the contents of an enabled unit, failing if absent or not enabled.
func (r rendered) unit(t *testing.T, name string) string {
	t.Helper()
	for _, u := range r.Systemd.Units {
		if u.Name != name {
			continue
		}
		if u.Enabled == nil || !*u.Enabled || u.Contents == nil {
			t.Fatalf("unit %s is not enabled or has no contents", name)
		}
		return *u.Contents
	}
	t.Fatalf("config has no unit %s", name)
	return ""
}

// unitContents returns the contents of a unit, enabled or not.
func (r rendered) unitContents(t *testing.T, name string) string {
	t.Helper()
	for _, u := range r.Systemd.Units {
		if u.Name == name && u.Contents != nil {
			return *u.Contents
		}
	}
	t.Fatalf("config has no unit %s with contents", name)
	return ""
}

func (r rendered) hasUnit(name string) bool {
	for _, u := range r.Systemd.Units {
		if u.Name == name {
			return true
		}
	}
	return false
}

func decodeDataURL(t *testing.T, src string) string {
	t.Helper()
	head, data, ok := strings.Cut(strings.TrimPrefix(src, "data:"), ",")
	if !ok || !strings.HasPrefix(src, "data:") {
		t.Fatalf("not a data URL: %q", src)
	}
	if strings.HasSuffix(head, ";base64") {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			t.Fatalf("data URL %q: %v", src, err)
		}
		return string(b)
	}
	s, err := url.PathUnescape(data)
	if err != nil {
		t.Fatalf("data URL %q: %v", src, err)
	}
	return s
}
