package provision

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/sites"
)

func TestDHCPInterfaces(t *testing.T) {
	rel := func(name, iface, subnet string, mode sites.DHCPMode) *sites.Release {
		return &sites.Release{Site: &sites.Site{Name: name, Network: sites.Network{
			Interface: iface, Subnet: netip.MustParsePrefix(subnet), DHCP: sites.DHCP{Mode: mode}}}}
	}
	rels := []*sites.Release{
		rel("lab", "br0", "10.99.0.0/24", sites.DHCPAuthoritative),
		rel("second", "br1", "10.98.0.0/24", ""),
		rel("proxied", "br0", "10.96.0.0/24", sites.DHCPProxy),
		rel("nowhere", "", "10.95.0.0/24", ""),
	}
	// The host's addresses: br0 has one in lab's subnet and one outside.
	addr := func(iface string, subnet netip.Prefix) netip.Addr {
		for _, a := range map[string][]string{"br0": {"192.0.2.1", "10.99.0.1"}, "br1": {"10.98.0.1"}}[iface] {
			if ip := netip.MustParseAddr(a); subnet.Contains(ip) {
				return ip
			}
		}
		return netip.Addr{}
	}
	for name, tc := range map[string]struct {
		override string
		serverIP netip.Addr
		want     []DHCPInterface
		skipped  []string
	}{
		"each site's interface": {
			want: []DHCPInterface{
				{Name: "br0", ServerIP: netip.MustParseAddr("10.99.0.1"), Proxy: true},
				{Name: "br1", ServerIP: netip.MustParseAddr("10.98.0.1")},
			},
			skipped: []string{"nowhere"},
		},
		"--interface and --server-ip for every site": {
			override: "eth1", serverIP: netip.MustParseAddr("10.0.0.5"),
			want: []DHCPInterface{{Name: "eth1", ServerIP: netip.MustParseAddr("10.0.0.5"), Proxy: true}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, skipped := DHCPInterfaces(rels, tc.override, tc.serverIP, addr)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("interfaces (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.skipped, skipped); diff != "" {
				t.Errorf("skipped (-want +got):\n%s", diff)
			}
		})
	}
}
