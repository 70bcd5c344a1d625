package sites

import "net/netip"

// FreeAddresses returns up to n addresses of the site's own subnet
// (network.subnet) that a new machine may take, lowest first: see
// FreeAddressesIn. It is what the discovered-machine page proposes, so that
// an entry it suggests passes the gate.
func FreeAddresses(s *Site, others []*Site, n int) []netip.Addr {
	return FreeAddressesIn(s, others, s.Network.Subnet, n)
}

// FreeAddressesIn returns up to n addresses of subnet -- the site's subnet
// or one of its relays' -- that the gate accepts for a new machine of s,
// lowest first: not the network or broadcast address, not a gateway, the
// api_vip or a DNS server, outside every dynamic range (network.dhcp.range
// and the relays' ranges: the DHCP server could hand the address to an
// unknown machine), and used by no machine of s or of others (the sites the
// server serves from other versions). Fewer than n, or none, means the
// subnet has no more room; an IPv6 subnet or one that is not the site's
// has none.
func FreeAddressesIn(s *Site, others []*Site, subnet netip.Prefix, n int) []netip.Addr {
	if n <= 0 || !subnet.IsValid() || !subnet.Addr().Is4() || !ownSubnet(s, subnet) {
		return nil
	}
	subnet = subnet.Masked()
	taken := map[netip.Addr]bool{s.Network.Gateway: true, s.Cluster.APIVIP: true}
	for _, a := range s.Network.DNS {
		taken[a] = true
	}
	ranges := []*Range{s.Network.DHCP.Range}
	for _, r := range s.Network.Relays {
		taken[r.Gateway] = true
		ranges = append(ranges, r.Range)
	}
	for _, site := range append([]*Site{s}, others...) {
		if site == nil {
			continue
		}
		for _, m := range site.Machines {
			taken[m.IP] = true
		}
	}
	var free []netip.Addr
	last := broadcast(subnet)
	for a := subnet.Addr().Next(); a.IsValid() && a.Less(last) && len(free) < n; a = a.Next() {
		if taken[a] || inAny(ranges, a) {
			continue
		}
		free = append(free, a)
	}
	return free
}

// SubnetOf returns the subnet of s that holds a: a relay's subnet if one
// does, else the site's own (also when a is not valid), which is where a
// machine last seen at a can be given a reserved address.
func SubnetOf(s *Site, a netip.Addr) netip.Prefix {
	for _, r := range s.Network.Relays {
		if a.IsValid() && r.Subnet.IsValid() && r.Subnet.Contains(a) {
			return r.Subnet.Masked()
		}
	}
	return s.Network.Subnet.Masked()
}

func ownSubnet(s *Site, p netip.Prefix) bool {
	if p.Masked() == s.Network.Subnet.Masked() {
		return true
	}
	for _, r := range s.Network.Relays {
		if p.Masked() == r.Subnet.Masked() {
			return true
		}
	}
	return false
}

func inAny(ranges []*Range, a netip.Addr) bool {
	for _, r := range ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}
