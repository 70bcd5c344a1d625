package provision

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
)

// A machine's target names the mirror its site's first matching selector
// picks (the lab: lab-m1 and lab-w1 in rack r1, lab-w2 in rack r2), and
// the image's rootfs argument; an unknown machine takes only a mirror
// without a selector.
func TestTargetMirror(t *testing.T) {
	c := newCore(t)
	rel := withSite(c.v1, func(s *sites.Site, im *sites.Image) {
		s.Mirrors = []sites.Mirror{
			{URL: "http://10.99.1.2:8081", Select: "rack=r1"},
			{URL: "http://10.99.2.2:8081", Select: "rack=r2"},
		}
		im.RootfsArg = "live.rootfs"
	})
	disc := *c.v1.Image
	disc.Name = "discovery"
	rel.Site.DiscoveryImage, rel.Discovery = "discovery", &disc
	c.activate(rel)
	for name, want := range map[string]string{"lab-m1": "http://10.99.1.2:8081", "lab-w1": "http://10.99.1.2:8081", "lab-w2": "http://10.99.2.2:8081"} {
		tg := c.target(name)
		if tg.Mirror != want || tg.RootfsArg != "live.rootfs" {
			t.Errorf("%s: mirror %q, rootfs argument %q; want %q, live.rootfs", name, tg.Mirror, tg.RootfsArg, want)
		}
	}
	unknown := sites.MAC("52:54:00:aa:bb:cc")
	if _, err := c.db.Bind(c.ctx, inventory.LeaseRequest{MAC: unknown, IP: netip.MustParseAddr("10.99.0.150"), Site: "lab"}); err != nil {
		t.Fatal(err)
	}
	tg, err := c.svc.Target(c.ctx, string(unknown), pxe.Hints{})
	if err != nil || tg.Kind != pxe.TargetDiscovery || tg.Mirror != "" {
		t.Errorf("unknown machine: %v %q %v; want discovery from the server", tg.Kind, tg.Mirror, err)
	}

	// The script iPXE gets: rack r1's mirror first, the server after it.
	sc, err := pxe.ParseScripts()
	if err != nil {
		t.Fatal(err)
	}
	tg = c.target("lab-w1")
	tg.MAC = string(c.mac("lab-w1"))
	script, err := sc.Script(tg, "http://10.99.0.1:8080", "dG9rZW4")
	if err != nil {
		t.Fatal(err)
	}
	k := "/images/sha256/" + tg.Kernel
	want := "kernel http://10.99.1.2:8081" + k + " "
	fallback := " || kernel http://10.99.0.1:8080" + k + "?mac=" + tg.MAC + " "
	if !strings.Contains(script, want) || !strings.Contains(script, fallback) {
		t.Errorf("lab-w1's script lacks %q or %q:\n%s", want, fallback, script)
	}
}
