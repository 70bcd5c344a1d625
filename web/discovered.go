package web

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// DiscoveredView is a machine no site config declares, with the lines to
// paste into its site.yaml.
type DiscoveredView struct {
	MachineView
	Snippet string `json:"snippet"`
}

// discovered lists a page of the machines in no site config, the last seen
// first, and the cursor of the next page. Each snippet proposes a
// different free address, so snippets pasted together pass the gate too.
func (s *server) discovered(c echo.Context) ([]DiscoveredView, string, error) {
	f := inventory.MachineFilter{Discovered: true, NewestFirst: true}
	var err error
	if f.Limit, f.After, err = pageParams(c); err != nil {
		return nil, "", err
	}
	ms, next, err := s.machineViews(c.Request().Context(), f)
	if err != nil {
		return nil, "", err
	}
	plan := s.addressPlan()
	wants := make([]addrWant, len(ms))
	for i, m := range ms {
		wants[i] = addrWant{site: m.Site, seen: parseAddr(m.IP)}
	}
	addrs := plan.reserve(wants)
	out := make([]DiscoveredView, 0, len(ms))
	for i, m := range ms {
		out = append(out, DiscoveredView{MachineView: m, Snippet: snippet(m, addrs[i])})
	}
	return out, next, nil
}

// snippet is a machines: entry for site.yaml: a name (its old one if a
// config declared it once), its MAC, role worker and a free address (see
// sites.FreeAddresses), or why there is none.
func snippet(m MachineView, a reserved) string {
	name := m.Name
	if name == "" {
		prefix := m.Site
		if prefix == "" {
			prefix = "node"
		}
		name = prefix + "-" + strings.ReplaceAll(string(m.MAC), ":", "")[6:]
	}
	return entry(name, m.MAC, a, m.IP)
}

// entry is one machines: entry of site.yaml, indented to go under
// machines:.
func entry(name string, mac sites.MAC, a reserved, seen string) string {
	ip := a.addr.String() + "  # free: outside the dynamic ranges, used by no machine"
	if !a.addr.IsValid() {
		ip = "CHOOSE  # " + a.why
	}
	if seen != "" {
		ip += " (last seen at " + seen + ")"
	}
	return fmt.Sprintf("  - name: %s\n    mac: %q\n    role: worker\n    ip: %s\n    # bmc: {driver: ipmi, address: HOST:623, credentials: NAME}\n",
		name, mac, ip)
}

// addrWant asks for a free address of a site, in the subnet where the
// machine was last seen (a relay's, or the site's own).
type addrWant struct {
	site string
	seen netip.Addr
}

// reserved is a free address, or why there is none.
type reserved struct {
	addr   netip.Addr
	subnet netip.Prefix
	why    string
}

// addressPlan is the active config of every served site, to find free
// addresses in: an address any of them gives a machine is taken.
type addressPlan struct {
	sites map[string]*sites.Site
}

func (s *server) addressPlan() addressPlan {
	p := addressPlan{sites: map[string]*sites.Site{}}
	for _, st := range s.Sites.Status() {
		if rel := s.Sites.Release(st.Site); rel != nil && rel.Site != nil {
			p.sites[st.Site] = rel.Site
		}
	}
	return p
}

// reserve gives each want a different free address of its site, lowest
// first in the order asked, with sites.FreeAddressesIn: the gate's own
// rules.
func (p addressPlan) reserve(wants []addrWant) []reserved {
	type key struct {
		site   string
		subnet netip.Prefix
	}
	out := make([]reserved, len(wants))
	keys := make([]key, len(wants))
	count := map[key]int{}
	for i, w := range wants {
		site := p.sites[w.site]
		if site == nil {
			out[i].why = "no active config of site " + quoteOr(w.site, "(none seen)") + " to pick a free address from"
			continue
		}
		keys[i] = key{w.site, sites.SubnetOf(site, w.seen)}
		count[keys[i]]++
	}
	free := map[key][]netip.Addr{}
	for k, n := range count {
		var others []*sites.Site
		for name, o := range p.sites {
			if name != k.site {
				others = append(others, o)
			}
		}
		free[k] = sites.FreeAddressesIn(p.sites[k.site], others, k.subnet, n)
	}
	for i := range wants {
		k := keys[i]
		if out[i].why != "" {
			continue
		}
		out[i].subnet = k.subnet
		if len(free[k]) == 0 {
			out[i].why = "no free address left in " + k.subnet.String() +
				" outside the dynamic ranges: shrink a range or free an address"
			continue
		}
		out[i].addr, free[k] = free[k][0], free[k][1:]
	}
	return out
}

func quoteOr(s, empty string) string {
	if s == "" {
		return empty
	}
	return fmt.Sprintf("%q", s)
}

func parseAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}

// SitePatch is what to add to a site's site.yaml to declare discovered
// machines: one machines: entry each, named <site>-new-N, role worker,
// with a free address.
type SitePatch struct {
	Site     string         `json:"site"`
	File     string         `json:"file"` // sites/<site>/site.yaml
	Machines []PatchMachine `json:"machines"`
	// YAML is the entries, ready to paste under the file's machines:.
	YAML string `json:"yaml"`
	// NoAddress lists the machines left without an address: the subnet
	// has no free one. Their entries say CHOOSE.
	NoAddress []sites.MAC `json:"no_address,omitempty"`
}

// PatchMachine is one machine of a SitePatch; IP is empty when none is
// free.
type PatchMachine struct {
	Name string     `json:"name"`
	MAC  sites.MAC  `json:"mac"`
	Role sites.Role `json:"role"`
	IP   string     `json:"ip,omitempty"`
	// Note says why IP is empty.
	Note string `json:"note,omitempty"`
}

// sitePatch makes the patch of the query's site for the discovered
// machines its mac parameters name. Without site, the machines' own site
// (where they were seen) is taken, if they share one.
func (s *server) sitePatch(c echo.Context) (SitePatch, error) {
	ctx := c.Request().Context()
	var macs []sites.MAC
	for _, raw := range c.QueryParams()["mac"] {
		mac, err := sites.ParseMAC(raw)
		if err != nil {
			return SitePatch{}, kindf(ErrBadRequest, "mac=%q: %v", raw, err)
		}
		if !slices.Contains(macs, mac) {
			macs = append(macs, mac)
		}
	}
	if len(macs) == 0 {
		return SitePatch{}, kindf(ErrBadRequest, "select the machines to add: one mac=… parameter each")
	}
	site := c.QueryParam("site")
	seenOn := map[string]bool{}
	ms := make([]inventory.Machine, len(macs))
	for i, mac := range macs {
		m, err := s.DB.Machine(ctx, mac)
		if errors.Is(err, inventory.ErrNotFound) {
			return SitePatch{}, kindf(ErrNotFound, "mac=%s: no machine with this MAC has been seen", mac)
		}
		if err != nil {
			return SitePatch{}, err
		}
		if !m.Discovered {
			return SitePatch{}, kindf(ErrConflict, "mac=%s: already declared, as %s/%s", mac, m.Site, m.Name)
		}
		ms[i] = m
		if m.Site != "" {
			seenOn[m.Site] = true
		}
	}
	if site == "" {
		switch len(seenOn) {
		case 1:
			for name := range seenOn {
				site = name
			}
		case 0:
			return SitePatch{}, kindf(ErrBadRequest, "the machines were seen on no site: name the site to add them to with site=")
		default:
			return SitePatch{}, kindf(ErrBadRequest, "the machines were seen on sites %s: choose one with site=, or select machines of one site",
				strings.Join(slices.Sorted(maps.Keys(seenOn)), ", "))
		}
	}
	plan := s.addressPlan()
	target := plan.sites[site]
	if target == nil {
		var served []string
		for _, st := range s.Sites.Status() {
			served = append(served, st.Site)
			if st.Site == site {
				return SitePatch{}, kindf(ErrConflict, "site=%s has no active version to add machines to", site)
			}
		}
		return SitePatch{}, kindf(ErrNotFound, "site=%q: no such site (served: %s)", site, strings.Join(served, ", "))
	}
	names := map[string]bool{}
	for _, o := range plan.sites {
		for _, m := range o.Machines {
			names[m.Name] = true
		}
	}
	wants := make([]addrWant, len(ms))
	for i, m := range ms {
		seen := m.LastIP
		if m.Site != site {
			seen = netip.Addr{} // seen elsewhere: the site's own subnet
		}
		wants[i] = addrWant{site: site, seen: seen}
	}
	addrs := plan.reserve(wants)
	p := SitePatch{Site: site, File: "sites/" + site + "/site.yaml", Machines: make([]PatchMachine, 0, len(ms))}
	var y strings.Builder
	n := 0
	for i, m := range ms {
		name := ""
		for name == "" || names[name] {
			n++
			name = fmt.Sprintf("%s-new-%d", site, n)
		}
		pm := PatchMachine{Name: name, MAC: m.MAC, Role: sites.RoleWorker}
		if a := addrs[i]; a.addr.IsValid() {
			pm.IP = a.addr.String()
		} else {
			pm.Note = a.why
			p.NoAddress = append(p.NoAddress, m.MAC)
		}
		p.Machines = append(p.Machines, pm)
		seen := ""
		if m.LastIP.IsValid() {
			seen = m.LastIP.String()
		}
		y.WriteString(entry(name, m.MAC, addrs[i], seen))
	}
	p.YAML = y.String()
	return p, nil
}
