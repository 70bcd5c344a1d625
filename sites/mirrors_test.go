package sites

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMirrorsAccepted(t *testing.T) {
	files := baseFiles("image: node", `image: node
mirrors:
  - {url: "http://10.99.1.2:8081", select: rack=r1}
  - {url: "https://cache.example/undercloud", select: "rack=r2,role=worker"}
  - {url: "http://[fd00::2]:8081"}`)
	cfg, ps := Load(files)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	want := []Mirror{
		{URL: "http://10.99.1.2:8081", Select: "rack=r1"},
		{URL: "https://cache.example/undercloud", Select: "rack=r2,role=worker"},
		{URL: "http://[fd00::2]:8081"},
	}
	if diff := cmp.Diff(want, cfg.Sites["s1"].Mirrors); diff != "" {
		t.Errorf("mirrors (-want +got):\n%s", diff)
	}
	if ps := check(t, files); len(ps) > 0 {
		t.Errorf("valid mirrors rejected:\n%v", ps)
	}
}

// Every bad mirror is one problem naming the file, the field and the value.
func TestMirrorsRefused(t *testing.T) {
	tests := map[string]struct {
		mirrors string
		want    []string
	}{
		"trailing slash": {`[{url: "http://10.99.1.2:8081/"}]`, []string{
			`sites/s1/site.yaml:mirrors[0].url: "http://10.99.1.2:8081/": must not end in '/': artifacts are fetched at <url>/images/sha256/<hex> (line 11)`}},
		"not http": {`[{url: "ftp://10.99.1.2"}]`, []string{
			`sites/s1/site.yaml:mirrors[0].url: "ftp://10.99.1.2": want an http:// or https:// URL (line 11)`}},
		"relative": {`[{url: "10.99.1.2:8081"}]`, []string{
			`sites/s1/site.yaml:mirrors[0].url: "10.99.1.2:8081": not a URL (line 11)`}},
		"no host": {`[{url: "http:///x"}]`, []string{
			`sites/s1/site.yaml:mirrors[0].url: "http:///x": no host (line 11)`}},
		"query": {`[{url: "http://m.example/?x=1"}]`, []string{
			`sites/s1/site.yaml:mirrors[0].url: "http://m.example/?x=1": must not have a query or fragment: artifacts are fetched at <url>/images/sha256/<hex> (line 11)`}},
		"user": {`[{url: "http://u:p@m.example"}]`, []string{
			`sites/s1/site.yaml:mirrors[0].url: "http://u:p@m.example": must not carry a user or password (line 11)`}},
		"ipxe variable": {`[{url: "http://${next-server}:8081"}]`, []string{
			`sites/s1/site.yaml:mirrors[0].url: "http://${next-server}:8081": not a URL (line 11)`}},
		"space": {`[{url: "http://m.example/a b"}]`, []string{
			`sites/s1/site.yaml:mirrors[0].url: "http://m.example/a b": the character ' ' cannot be carried by an iPXE script or a kernel command line (letters, digits and . _ - : / [ ] % ~ only) (line 11)`}},
		"no url": {`[{select: rack=r1}]`, []string{
			`sites/s1/site.yaml:mirrors[0].url: required field is missing or empty (line 11)`}},
		"bad selector": {`[{url: "http://m1.example", select: rack}]`, []string{
			`sites/s1/site.yaml:mirrors[0].select: selector "rack": term "rack" has no '=' (want key=value) (line 11)`}},
		"bad role in selector": {`[{url: "http://m1.example", select: role=boss}]`, []string{
			`sites/s1/site.yaml:mirrors[0].select: selector "role=boss": term "role=boss": unknown role "boss" (want master or worker) (line 11)`}},
		"same url twice": {`[{url: "http://m1.example", select: rack=r1}, {url: "http://m1.example", select: rack=r2}]`, []string{
			`sites/s1/site.yaml:mirrors[1].url: "http://m1.example" is also mirrors[0].url (line 11)`}},
		"same selector twice": {`[{url: "http://m1.example", select: "rack=r1"}, {url: "http://m2.example", select: " rack = r1 "}]`, []string{
			`sites/s1/site.yaml:mirrors[1].select: " rack = r1 " is never chosen: mirrors[0] has the same selector and comes first (line 11)`}},
		"after a catch-all": {`[{url: "http://m1.example"}, {url: "http://m2.example", select: rack=r2}]`, []string{
			`sites/s1/site.yaml:mirrors[1]: is never chosen: mirrors[0] has no select and takes every machine first (line 11)`}},
		"not a list": {`{url: "http://m1.example"}`, []string{
			`sites/s1/site.yaml:mirrors: want a list, got a mapping (line 11)`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ps := check(t, baseFiles("image: node", "image: node\nmirrors: "+tc.mirrors))
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRootfsArg(t *testing.T) {
	load := func(extra string) (*Config, Problems) {
		files := baseFiles()
		files["images/node.yaml"] = []byte(testImage + extra)
		return Load(files)
	}
	cfg, ps := load("")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if got := cfg.Images["node"].RootfsArg; got != DefaultRootfsArg {
		t.Errorf("default rootfs_arg = %q, want %q", got, DefaultRootfsArg)
	}
	cfg, ps = load("rootfs_arg: live.fetch\n")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if got := cfg.Images["node"].RootfsArg; got != "live.fetch" {
		t.Errorf("rootfs_arg = %q, want live.fetch", got)
	}
	for arg, want := range map[string]string{
		"rootfs_arg: \"a=b\"\n":         `images/node.yaml:rootfs_arg: "a=b" is not a kernel argument name: letters, digits, '.', '_' and '-' only (e.g. coreos.live.rootfs_url) (line 6)`,
		"rootfs_arg: \"x y\"\n":         `images/node.yaml:rootfs_arg: "x y" is not a kernel argument name: letters, digits, '.', '_' and '-' only (e.g. coreos.live.rootfs_url) (line 6)`,
		"ignition_arg: \"u\\nshell\"\n": `images/node.yaml:ignition_arg: "u\nshell" is not a kernel argument name: letters, digits, '.', '_' and '-' only (e.g. ignition.config.url) (line 6)`,
	} {
		files := baseFiles()
		files["images/node.yaml"] = []byte(testImage + arg)
		ps := check(t, files)
		if len(ps) != 1 || ps[0].String() != want {
			t.Errorf("%s: problems\n%v\nwant %s", strings.TrimSpace(arg), ps, want)
		}
	}
}
