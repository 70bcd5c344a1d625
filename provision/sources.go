package provision

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// Neighbours reads the kernel's neighbour table: the MAC that answered ARP
// for an address on a directly attached network. ProcARP implements it.
type Neighbours interface {
	NeighbourMAC(ip netip.Addr) (mac sites.MAC, ok bool)
}

// ProcARP reads the IPv4 neighbour table from /proc/net/arp. Only complete
// entries count: an incomplete one names no MAC. An address on a routed
// network has no entry of its own (the kernel knows its gateway's MAC, not
// the host's), so a hit means the host is on one of the server's own L2
// segments.
type ProcARP struct {
	Path string // "" means /proc/net/arp
}

// atfCom is the ATF_COM flag of a neighbour entry: the entry is complete,
// its hardware address known (linux/if_arp.h).
const atfCom = 0x2

// NeighbourMAC implements Neighbours.
func (p ProcARP) NeighbourMAC(ip netip.Addr) (sites.MAC, bool) {
	path := p.Path
	if path == "" {
		path = "/proc/net/arp"
	}
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	return arpLookup(f, ip.Unmap())
}

// arpLookup finds ip in the text of /proc/net/arp:
//
//	IP address       HW type     Flags       HW address            Mask     Device
//	10.0.0.7         0x1         0x2         52:54:00:12:34:56     *        br0
func arpLookup(r io.Reader, ip netip.Addr) (sites.MAC, bool) {
	sc := bufio.NewScanner(r)
	sc.Scan() // the header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil || a != ip {
			continue
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 32)
		if err != nil || flags&atfCom == 0 {
			continue
		}
		hw, err := net.ParseMAC(f[3])
		if err != nil || len(hw) != 6 {
			continue
		}
		return sites.MAC(hw.String()), true
	}
	return "", false
}

// Allowed decides whether a request naming machine mac from ip comes from
// the machine itself (pxe.Sources): only such a request is minted a boot
// token, served a config or heard in a callback (see allowedSource). Reading
// the inventory fails closed.
func (s *Service) Allowed(ctx context.Context, mac string, ip netip.Addr) bool {
	m := sites.MAC(mac)
	var a addresses
	if p, ok := s.ix.machine(m); ok {
		a.Reserved, a.Proxy = p.m.IP, p.rel.Site.Network.DHCP.Mode == sites.DHCPProxy
	}
	if allowedSource(m, ip, a) { // its reservation: no need to ask further
		return true
	}
	if err := s.gatherAddresses(ctx, m, ip, &a); err != nil {
		s.log().Warn("source check: cannot read the inventory", "mac", mac, "ip", ip.String(), "err", err)
	}
	return allowedSource(m, ip, a)
}

// gatherAddresses fills in what the inventory and the neighbour table know
// of machine m's addresses: its active lease, and in proxy mode its last
// address and the neighbour entry of ip.
func (s *Service) gatherAddresses(ctx context.Context, m sites.MAC, ip netip.Addr, a *addresses) error {
	lease, err := s.DB.LeaseByMAC(ctx, m)
	switch {
	case errors.Is(err, inventory.ErrNotFound):
	case err != nil:
		return err
	case lease.MAC == m && lease.State == inventory.LeaseBound && lease.Active(s.now()):
		a.Lease = lease.IP
	}
	if !a.Proxy {
		return nil
	}
	row, err := s.DB.Machine(ctx, m)
	switch {
	case errors.Is(err, inventory.ErrNotFound):
	case err != nil:
		return fmt.Errorf("machine %s: %w", m, err)
	default:
		a.LastIP = row.LastIP
	}
	nb := s.Neighbours
	if nb == nil {
		nb = ProcARP{}
	}
	if mac, ok := nb.NeighbourMAC(ip); ok {
		a.Neighbour = mac
	}
	return nil
}

// now is the inventory's clock, so that lease times compare with it.
func (s *Service) now() time.Time {
	if s.DB.Now != nil {
		return s.DB.Now()
	}
	return time.Now()
}
