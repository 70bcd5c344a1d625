package provision

import (
	"net/netip"

	"github.com/undercloud/undercloud/sites"
)

// chooseVersion decides which version a known machine boots: its assigned
// version, or its site's active one when it has none yet (its first boot),
// when the site upgrades on reboot, or when the assigned version cannot be
// served to it any more (servable false: the version is gone from the
// repo, or no longer declares the machine). reassign says the machine's
// assignment must change to the version returned.
func chooseVersion(assigned, active string, onReboot, servable bool) (version string, reassign bool) {
	switch {
	case assigned == active:
		return active, false
	case assigned == "", onReboot, !servable:
		return active, true
	}
	return assigned, false
}

// installNeeded decides whether a machine whose image is an installer runs
// it (rather than booting its local disk): only while a rebuild of it is
// pending (not yet served its config), or before it ever reported booted
// (its first install). After an installer fetched its config it installs
// and reboots, and that reboot must take the disk: a machine never loops
// installing.
func installNeeded(rebuildPending, everBooted bool) bool {
	return rebuildPending || !everBooted
}

// bootstrapped decides whether a site's etcd cluster exists: every master
// has reported booted at least once (hasBooted). Until then masters are
// rendered to create the cluster (--initial-cluster-state new); after, to
// join it (existing). A site without masters has no cluster to bootstrap.
func bootstrapped(masters []sites.Machine, hasBooted func(sites.MAC) bool) bool {
	if len(masters) == 0 {
		return false
	}
	for _, m := range masters {
		if !hasBooted(m.MAC) {
			return false
		}
	}
	return true
}

// addresses is what the server knows of where a machine is on the network,
// for allowedSource.
type addresses struct {
	// Reserved is its address in the site config; invalid for a machine in
	// no site.
	Reserved netip.Addr
	// Lease is the address of its active DHCP lease; invalid when it holds
	// none.
	Lease netip.Addr
	// Proxy: its site's DHCP is someone else's (proxyDHCP), so the server
	// holds no lease for it and trusts what the network showed instead.
	Proxy bool
	// LastIP is the address its own traffic last showed (the inventory's
	// last_ip).
	LastIP netip.Addr
	// Neighbour is the MAC the kernel's neighbour table holds for the
	// request's source address, "" when it holds none.
	Neighbour sites.MAC
}

// allowedSource decides whether a request naming machine mac that came from
// ip comes from the machine itself, so that it may have a boot token, its
// config and a say in callbacks: from its lease or its reservation (a
// relayed machine's requests come from its own address too, not the
// relay's). On a proxyDHCP segment there is no lease: the address its
// traffic showed, or the neighbour entry of ip naming mac (the machine is
// on the served L2 and answered ARP from ip with its MAC), stand for it.
// Anyone who reaches the HTTP port can name a MAC; the address is what a
// remote attacker cannot choose and still get the answer.
func allowedSource(mac sites.MAC, ip netip.Addr, a addresses) bool {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return false
	}
	switch ip {
	case a.Reserved.Unmap(), a.Lease.Unmap():
		return true
	}
	if !a.Proxy {
		return false
	}
	return ip == a.LastIP.Unmap() || (a.Neighbour != "" && a.Neighbour == mac)
}

// chooseMirror decides where machine m fetches its image's artifacts: the
// base URL of the first of its site's mirrors whose selector matches it,
// or "" for the server itself. A machine no site declares (discovery) is
// the zero Machine: only a mirror without a selector takes it. A selector
// that does not parse matches nothing; the gate refuses it anyway.
func chooseMirror(mirrors []sites.Mirror, m sites.Machine) string {
	for _, mr := range mirrors {
		if sel, err := sites.ParseSelector(mr.Select); err == nil && sel.Matches(m) {
			return mr.URL
		}
	}
	return ""
}
