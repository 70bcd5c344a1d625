package provision

import (
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/undercloud/undercloud/dhcp"
	"github.com/undercloud/undercloud/sites"
)

// index is what the packet and request paths look up on every boot: the
// active release of each served site, the machines by MAC and the subnets.
// It says where a machine belongs; which version it boots is the
// inventory's (its assigned version).
// It is rebuilt whenever a version activates and swapped in atomically, so
// lookups take no lock.
type index struct {
	p atomic.Pointer[indexData]
}

type indexData struct {
	releases map[string]*sites.Release // by site
	machines map[sites.MAC]placed
	subnets  []dhcp.Subnet
}

// placed is a known machine and the release that declares it.
type placed struct {
	rel *sites.Release
	m   *sites.Machine
}

func (ix *index) load() *indexData {
	if d := ix.p.Load(); d != nil {
		return d
	}
	return &indexData{}
}

// update rebuilds the index from the active releases.
func (ix *index) update(rels []*sites.Release) {
	d := &indexData{releases: map[string]*sites.Release{}, machines: map[sites.MAC]placed{}}
	for _, r := range rels {
		d.releases[r.Site.Name] = r
		for i := range r.Site.Machines {
			m := &r.Site.Machines[i]
			d.machines[m.MAC] = placed{rel: r, m: m}
		}
		d.subnets = append(d.subnets, subnetsOf(r.Site)...)
	}
	ix.p.Store(d)
}

// subnetsOf turns a site's network into the DHCP server's subnets: its own
// segment and every relayed one.
func subnetsOf(s *sites.Site) []dhcp.Subnet {
	n := s.Network
	base := dhcp.Subnet{
		Site: s.Name, Prefix: n.Subnet.Masked(), Router: n.Gateway, DNS: n.DNS, Domain: n.Domain,
		Range: dhcpRange(n.DHCP.Range), LeaseTime: n.DHCP.LeaseTime.Std(), Proxy: n.DHCP.Mode == sites.DHCPProxy,
	}
	out := []dhcp.Subnet{base}
	for _, r := range n.Relays {
		sn := base
		sn.Prefix, sn.Router, sn.Range = r.Subnet.Masked(), r.Gateway, dhcpRange(r.Range)
		out = append(out, sn)
	}
	return out
}

func dhcpRange(r *sites.Range) *dhcp.Range {
	if r == nil {
		return nil
	}
	return &dhcp.Range{First: r.Start, Last: r.End}
}

// machine returns the known machine with mac and its release.
func (ix *index) machine(mac sites.MAC) (placed, bool) {
	p, ok := ix.load().machines[mac]
	return p, ok
}

// release returns a site's active release.
func (ix *index) release(site string) *sites.Release { return ix.load().releases[site] }

// Subnet implements dhcp.Plan.
func (s *Service) Subnet(link netip.Addr) (dhcp.Subnet, bool) {
	for _, sn := range s.ix.load().subnets {
		if sn.Prefix.Contains(link) {
			return sn, true
		}
	}
	return dhcp.Subnet{}, false
}

// Reservation implements dhcp.Plan: a known machine gets the address its
// site config gives it.
func (s *Service) Reservation(hw net.HardwareAddr) (dhcp.Reservation, bool) {
	p, ok := s.ix.machine(sites.MAC(hw.String()))
	if !ok {
		return dhcp.Reservation{}, false
	}
	return dhcp.Reservation{Site: p.rel.Site.Name, Hostname: p.m.Name, IP: p.m.IP}, true
}
