package provision

import (
	"net/netip"

	"github.com/undercloud/undercloud/sites"
)

// DHCPInterface is a network interface DHCP listens on: the server's
// address there (what replies name as the server) and whether a site on it
// runs proxyDHCP, which also needs port 4011.
type DHCPInterface struct {
	Name     string
	ServerIP netip.Addr // invalid when the interface has no IPv4 address
	Proxy    bool
}

// DHCPInterfaces decides where DHCP listens: on override (--interface) for
// every site, else on each active site's network.interface, one entry per
// interface in the order the sites come. The server's address is serverIP
// (--server-ip) when valid, else what addr finds on the interface inside
// the site's subnet. Sites that name no interface (and no override) get no
// DHCP; they are returned in skipped, for the log.
func DHCPInterfaces(rels []*sites.Release, override string, serverIP netip.Addr,
	addr func(iface string, subnet netip.Prefix) netip.Addr) (ifaces []DHCPInterface, skipped []string) {
	index := map[string]int{}
	for _, r := range rels {
		name := override
		if name == "" {
			name = r.Site.Network.Interface
		}
		if name == "" {
			skipped = append(skipped, r.Site.Name)
			continue
		}
		i, ok := index[name]
		if !ok {
			i = len(ifaces)
			index[name] = i
			ifaces = append(ifaces, DHCPInterface{Name: name, ServerIP: serverIP})
		}
		d := &ifaces[i]
		if !d.ServerIP.IsValid() {
			d.ServerIP = addr(name, r.Site.Network.Subnet)
		}
		d.Proxy = d.Proxy || r.Site.Network.DHCP.Mode == sites.DHCPProxy
	}
	return ifaces, skipped
}
