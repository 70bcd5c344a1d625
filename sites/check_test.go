package sites

import (
	"context"
	"strings"
	"testing"
)

const testImage = `ignition: 3.3.0
mode: live
artifacts:
  kernel: {path: /srv/k, sha256: 0000000000000000000000000000000000000000000000000000000000000000}
  initrd: {url: http://mirror.example/initrd, sha256: 1111111111111111111111111111111111111111111111111111111111111111}
`

const testSite = `network:
  subnet: 10.1.0.0/24
  gateway: 10.1.0.1
  dns: [10.1.0.1]
  dhcp:
    range: {start: 10.1.0.100, end: 10.1.0.199}
  relays:
    - subnet: 10.2.0.0/24
      gateway: 10.2.0.1
image: node
cluster: {name: c1, api_vip: 10.1.0.10}
machines:
  - {name: m1, mac: "52:54:00:00:00:01", role: master, ip: 10.1.0.11}
  - {name: w1, mac: "52:54:00:00:00:02", role: worker, ip: 10.1.0.21}
  - {name: w2, mac: "52:54:00:00:00:03", role: worker, ip: 10.2.0.22}
`

// check loads a repo made of the base files with replacements applied
// (old -> new in the site file) and runs the gate without renderer or
// artifact checks.
func check(t *testing.T, files Files, names ...string) Problems {
	t.Helper()
	cfg, ps := Load(files)
	if len(ps) > 0 {
		return ps
	}
	if len(names) == 0 {
		names = cfg.SiteNames()
	}
	return Gate{}.Check(context.Background(), cfg, names, Version{Commit: "abc"}, nil)
}

func baseFiles(siteEdits ...string) Files {
	site := testSite
	for i := 0; i+1 < len(siteEdits); i += 2 {
		site = strings.Replace(site, siteEdits[i], siteEdits[i+1], 1)
	}
	return Files{"images/node.yaml": []byte(testImage), "sites/s1/site.yaml": []byte(site)}
}

func TestCheckAcceptsValidSite(t *testing.T) {
	if ps := check(t, baseFiles()); len(ps) > 0 {
		t.Fatalf("valid site rejected:\n%v", ps)
	}
}

func TestCheckReportsFileFieldAndValue(t *testing.T) {
	tests := map[string]struct {
		edits []string
		want  string // the exact problem line
	}{
		"unknown field": {[]string{"image: node", "image: node\nimgae: typo"},
			"sites/s1/site.yaml:imgae: unknown field (known: network, image, cluster, ssh_keys, kernel_args, rollout, discovery_image, mirrors, heartbeat, machines) (line 11)"},
		"bad ip": {[]string{"ip: 10.1.0.11", "ip: 10.1.0.300"},
			`sites/s1/site.yaml:machines[0].ip: "10.1.0.300": IPv4 field has value >255 (line 13)`},
		"bad mac": {[]string{`"52:54:00:00:00:01"`, `"52:54:00:00:01"`},
			`sites/s1/site.yaml:machines[0].mac: "52:54:00:00:01": not a MAC address (line 13)`},
		"ip in dynamic range": {[]string{"ip: 10.1.0.21", "ip: 10.1.0.150"},
			"sites/s1/site.yaml:machines[1].ip: 10.1.0.150 is inside the dynamic range 10.1.0.100-10.1.0.199 (network.dhcp.range) (line 14)"},
		"ip outside subnets": {[]string{"ip: 10.1.0.21", "ip: 10.3.0.21"},
			"sites/s1/site.yaml:machines[1].ip: 10.3.0.21 is outside the site's subnets (10.1.0.0/24, 10.2.0.0/24) (line 14)"},
		"two masters": {[]string{"role: worker", "role: master"},
			"sites/s1/site.yaml:machines: 2 masters: etcd needs an odd number of members for a quorum (1, 3 or 5) (line 12)"},
		"unknown image": {[]string{"image: node", "image: fcos-99"},
			`sites/s1/site.yaml:image: unknown image "fcos-99" (the catalog has: node) (line 10)`},
		"unknown role": {[]string{"role: worker", "role: etcd"},
			`sites/s1/site.yaml:machines[1].role: unknown role "etcd" (want master or worker) (line 14)`},
		"duplicate mac": {[]string{`"52:54:00:00:00:02"`, `"52:54:00:00:00:01"`},
			"sites/s1/site.yaml:machines[1].mac: MAC 52:54:00:00:00:01 is already used by s1/m1 (this file) (line 14)"},
		"duplicate name": {[]string{"name: w1", "name: m1"},
			"sites/s1/site.yaml:machines[1].name: host name m1 is already used by s1/m1 (this file) (line 14)"},
		"missing required": {[]string{"cluster: {name: c1, api_vip: 10.1.0.10}", "cluster: {name: c1}"},
			"sites/s1/site.yaml:cluster.api_vip: required field is missing or empty (line 11)"},
		"gateway in range": {[]string{"gateway: 10.1.0.1", "gateway: 10.1.0.150"},
			"sites/s1/site.yaml:network.dhcp.range: 10.1.0.100-10.1.0.199 contains the gateway 10.1.0.150 (line 6)"},
		"vip is a machine": {[]string{"ip: 10.1.0.11", "ip: 10.1.0.10"},
			"sites/s1/site.yaml:machines[0].ip: 10.1.0.10 is the cluster's api_vip (line 13)"},
		"wrong type": {[]string{"dns: [10.1.0.1]", "dns: 10.1.0.1"},
			`sites/s1/site.yaml:network.dns: want a list, got "10.1.0.1" (line 4)`},
		"broadcast": {[]string{"ip: 10.1.0.11", "ip: 10.1.0.255"},
			"sites/s1/site.yaml:machines[0].ip: 10.1.0.255 is the network or broadcast address of 10.1.0.0/24 (line 13)"},
		"upgrade on reboot with masters": {[]string{"cluster: {name: c1, api_vip: 10.1.0.10}", "cluster: {name: c1, api_vip: 10.1.0.10}\nrollout: {upgrade: on-reboot}"},
			"sites/s1/site.yaml:rollout.upgrade: on-reboot would boot a new version on the site's masters (1) whenever they reboot, outside the one-master-at-a-time rule that keeps etcd's quorum; set rollout.allow_masters: true to accept that (line 12)"},
		"heartbeat too often": {[]string{"image: node", "image: node\nheartbeat: {interval: 2s}"},
			"sites/s1/site.yaml:heartbeat.interval: 2s: want from 10s to 1h0m0s (default 1m0s) (line 11)"},
		"heartbeat zero": {[]string{"image: node", "image: node\nheartbeat: {interval: 0s}"},
			"sites/s1/site.yaml:heartbeat.interval: 0s: want from 10s to 1h0m0s (default 1m0s) (line 11)"},
		"heartbeat not a duration": {[]string{"image: node", "image: node\nheartbeat: {interval: often}"},
			"sites/s1/site.yaml:heartbeat.interval: \"often\": not a duration (use e.g. 90s, 10m, 1h) (line 11)"},
		"unknown upgrade": {[]string{"cluster: {name: c1, api_vip: 10.1.0.10}", "cluster: {name: c1, api_vip: 10.1.0.10}\nrollout: {upgrade: always}"},
			`sites/s1/site.yaml:rollout.upgrade: "always": want rollout (the default: machines move only in a rebuild or a rollout) or on-reboot (line 12)`},
		"stall not under config": {[]string{"cluster: {name: c1, api_vip: 10.1.0.10}", "cluster: {name: c1, api_vip: 10.1.0.10}\nrollout: {timeouts: {config: 5m, stall: 5m}}"},
			"sites/s1/site.yaml:rollout.timeouts.stall: 5m0s must be shorter than the config timeout (5m0s): a stalled boot is power-cycled again before it fails (line 12)"},
		"negative timeout": {[]string{"cluster: {name: c1, api_vip: 10.1.0.10}", "cluster: {name: c1, api_vip: 10.1.0.10}\nrollout: {timeouts: {booting: -1m}}"},
			`sites/s1/site.yaml:rollout.timeouts.booting: "-1m": must not be negative (line 12)`},
		"not yaml": {[]string{"image: node", "image: [node"},
			"sites/s1/site.yaml: not valid YAML: line 9: did not find expected ',' or ']'"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ps := check(t, baseFiles(tc.edits...))
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
				if p.String() == tc.want {
					return
				}
			}
			t.Fatalf("want problem\n  %s\ngot\n  %s", tc.want, strings.Join(got, "\n  "))
		})
	}
}

// upgrade: on-reboot is accepted for a site with masters only when it says
// so, and for a site without masters as it is.
func TestCheckUpgradeOnReboot(t *testing.T) {
	allowed := baseFiles("cluster: {name: c1, api_vip: 10.1.0.10}", "cluster: {name: c1, api_vip: 10.1.0.10}\nrollout: {upgrade: on-reboot, allow_masters: true}")
	if ps := check(t, allowed); len(ps) > 0 {
		t.Errorf("on-reboot with allow_masters rejected:\n%v", ps)
	}
	workers := baseFiles("role: master", "role: worker", "cluster: {name: c1, api_vip: 10.1.0.10}", "cluster: {name: c1, api_vip: 10.1.0.10}\nrollout: {upgrade: on-reboot}")
	if ps := check(t, workers); len(ps) > 0 {
		t.Errorf("on-reboot for a site without masters rejected:\n%v", ps)
	}
}

func TestCheckAcrossSites(t *testing.T) {
	files := baseFiles()
	files["sites/s2/site.yaml"] = []byte(strings.NewReplacer(
		"10.1.0.", "10.5.0.", "10.2.0.", "10.6.0.", `"52:54:00:00:00:02"`, `"52:54:00:00:00:aa"`,
		"name: m1", "name: s2m1", "name: w1", "name: s2w1", "name: w2", "name: s2w2",
		`"52:54:00:00:00:01"`, `"52:54:00:00:00:bb"`,
	).Replace(testSite))
	// s2's w2 keeps s1's w2 MAC.
	ps := check(t, files)
	want := "sites/s2/site.yaml:machines[2].mac: MAC 52:54:00:00:00:03 is already used by s1/w2 (sites/s1/site.yaml) (line 15)"
	if len(ps) != 1 || ps[0].String() != want {
		t.Fatalf("want exactly\n  %s\ngot\n  %v", want, ps)
	}
	// Against another site given as already active.
	cfg, _ := Load(files)
	ps = Gate{}.Check(context.Background(), cfg, []string{"s1"}, Version{}, map[string]*Site{"s2": cfg.Sites["s2"]})
	if len(ps) != 1 || !strings.Contains(ps[0].String(), "sites/s1/site.yaml:machines[2].mac: MAC 52:54:00:00:00:03 is already used by s2/s2w2") {
		t.Fatalf("conflict with an active site not reported on the candidate: %v", ps)
	}
}

func TestImageChecks(t *testing.T) {
	tests := map[string]struct{ old, new, want string }{
		"digest":  {"sha256: 0000000000000000000000000000000000000000000000000000000000000000", "sha256: abc", `images/node.yaml:artifacts.kernel.sha256: "abc" is not a sha256 digest (64 lower-case hex digits) (line 4)`},
		"spec":    {"ignition: 3.3.0", "ignition: 2.2.0", `images/node.yaml:ignition: "2.2.0" is not an Ignition spec version (e.g. 3.3.0) (line 1)`},
		"mode":    {"mode: live", "mode: forever", `images/node.yaml:mode: "forever": want live or install (line 2)`},
		"both":    {"{path: /srv/k,", "{path: /srv/k, url: http://x/k,", "images/node.yaml:artifacts.kernel: give a path or a url, not both (line 4)"},
		"dotdot":  {"path: /srv/k", "path: ../../etc/shadow", `images/node.yaml:artifacts.kernel.path: "../../etc/shadow" must not contain .. (line 4)`},
		"scheme":  {"url: http://mirror.example/initrd", "url: ftp://mirror.example/initrd", `images/node.yaml:artifacts.initrd.url: "ftp://mirror.example/initrd": want an http://, https:// or file:// URL (line 5)`},
		"size":    {"{path: /srv/k,", "{path: /srv/k, size: -1,", "images/node.yaml:artifacts.kernel.size: -1: want the artifact's length in bytes (line 4)"},
		"missing": {"  initrd: {url: http://mirror.example/initrd, sha256: 1111111111111111111111111111111111111111111111111111111111111111}\n", "", "images/node.yaml:artifacts.initrd: required field is missing or empty (line 4)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			files := baseFiles()
			files["images/node.yaml"] = []byte(strings.Replace(testImage, tc.old, tc.new, 1))
			var got []string
			for _, p := range check(t, files) {
				got = append(got, p.String())
				if p.String() == tc.want {
					return
				}
			}
			t.Fatalf("want problem\n  %s\ngot\n  %s", tc.want, strings.Join(got, "\n  "))
		})
	}
}

func TestBindings(t *testing.T) {
	b, ps := ParseBindings([]byte("lab: v1\nparis-1: 3f9c2e1\n"))
	if len(ps) > 0 || b["lab"] != "v1" || b["paris-1"] != "3f9c2e1" {
		t.Fatalf("got %v %v", b, ps)
	}
	_, ps = ParseBindings([]byte("lab: v1\nlab: v2\nBad_Site: x\n"))
	want := []string{"bindings.yaml:Bad_Site: site name \"Bad_Site\" must be lower-case letters, digits and dashes", "bindings.yaml:lab: appears twice (line 2)"}
	if len(ps) != 2 || ps[0].String() != want[0] || ps[1].String() != want[1] {
		t.Fatalf("got %v", ps)
	}
}

type fakeRenderer struct{ fail string }

func (f fakeRenderer) Render(r *Release, m *Machine) error {
	if m.Name == f.fail {
		return Problems{{File: "sites/s1/snippets/common.bu", Field: "storage.files.0", Line: 3, Message: "boom"}}
	}
	return nil
}

func TestGateUsesRendererProblems(t *testing.T) {
	cfg, _ := Load(baseFiles())
	ps := Gate{Renderer: fakeRenderer{fail: "w1"}}.Check(context.Background(), cfg, []string{"s1"}, Version{}, nil)
	if len(ps) != 1 || ps[0].String() != "sites/s1/snippets/common.bu:storage.files.0: boom (line 3)" {
		t.Fatalf("got %v", ps)
	}
}
