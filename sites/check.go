package sites

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"
)

// checkSite runs the checks of one site that need nothing but the site and the
// image catalog. Cross-site checks are in checkUnique.
func checkSite(s *Site, images map[string]*Image) Problems {
	var ps Problems
	at := func(field, format string, args ...any) {
		ps = append(ps, problemf(s.File, field, s.Line(field), format, args...))
	}
	n := s.Network
	if n.Subnet.IsValid() && !n.Subnet.Addr().Is4() {
		at("network.subnet", "%s: only IPv4 provisioning networks are supported", n.Subnet)
	}
	if n.Subnet.IsValid() && n.Subnet.Masked() != n.Subnet {
		at("network.subnet", "%s has host bits set; did you mean %s?", n.Subnet, n.Subnet.Masked())
	}
	subnets := []netip.Prefix{n.Subnet.Masked()}
	if n.Gateway.IsValid() {
		inSubnet(at, "network.gateway", n.Gateway, n.Subnet)
	}
	for i, a := range n.DNS {
		if !a.Is4() {
			at(fmt.Sprintf("network.dns[%d]", i), "%s is not an IPv4 address", a)
		}
	}
	switch n.DHCP.Mode {
	case DHCPAuthoritative, DHCPProxy:
	default:
		at("network.dhcp.mode", "%q: want authoritative or proxy", n.DHCP.Mode)
	}
	ranges := map[string]*Range{}
	checkRange(at, "network.dhcp.range", n.DHCP.Range, n.Subnet, n.Gateway)
	if n.DHCP.Range != nil {
		ranges["network.dhcp.range"] = n.DHCP.Range
	}
	for i, r := range n.Relays {
		f := fmt.Sprintf("network.relays[%d]", i)
		for j, other := range subnets {
			if r.Subnet.IsValid() && other.IsValid() && r.Subnet.Overlaps(other) {
				what := "network.subnet"
				if j > 0 {
					what = fmt.Sprintf("network.relays[%d].subnet", j-1)
				}
				at(f+".subnet", "%s overlaps %s %s", r.Subnet, what, other)
			}
		}
		subnets = append(subnets, r.Subnet.Masked())
		inSubnet(at, f+".gateway", r.Gateway, r.Subnet)
		checkRange(at, f+".range", r.Range, r.Subnet, r.Gateway)
		if r.Range != nil {
			ranges[f+".range"] = r.Range
		}
	}
	if s.Image != "" && images[s.Image] == nil {
		at("image", "unknown image %q (the catalog has: %s)", s.Image, catalogNames(images))
	}
	if s.DiscoveryImage != "" && images[s.DiscoveryImage] == nil {
		at("discovery_image", "unknown image %q (the catalog has: %s)", s.DiscoveryImage, catalogNames(images))
	}
	if s.Cluster.Name != "" && !nameRE.MatchString(s.Cluster.Name) {
		at("cluster.name", "%q must be lower-case letters, digits and dashes", s.Cluster.Name)
	}
	if vip := s.Cluster.APIVIP; vip.IsValid() {
		hostIn(at, "cluster.api_vip", vip, subnets, n.Gateway, ranges)
	}
	for i, k := range s.SSHKeys {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			at(fmt.Sprintf("ssh_keys[%d]", i), "%q is not an SSH public key: %v", abbrev(k), err)
		}
	}
	for i, a := range s.KernelArgs {
		if a == "" || strings.ContainsAny(a, " \t\n") {
			at(fmt.Sprintf("kernel_args[%d]", i), "%q: one argument per list item, without spaces", a)
		}
	}
	ps = append(ps, checkRollout(s)...)
	ps = append(ps, checkMirrors(s)...)

	masters := 0
	for i, m := range s.Machines {
		f := fmt.Sprintf("machines[%d]", i)
		if m.Name != "" && !nameRE.MatchString(m.Name) {
			at(f+".name", "%q must be a host name: lower-case letters, digits and dashes", m.Name)
		}
		switch {
		case m.Role == RoleMaster:
			masters++
		case m.Role != "" && !m.Role.Valid():
			at(f+".role", "unknown role %q (want master or worker)", m.Role)
		}
		if m.IP.IsValid() {
			hostIn(at, f+".ip", m.IP, subnets, n.Gateway, ranges)
			if m.IP == s.Cluster.APIVIP {
				at(f+".ip", "%s is the cluster's api_vip", m.IP)
			}
		}
		for _, k := range sortedKeys(m.Labels) {
			if why := checkLabel(k, m.Labels[k]); why != "" {
				at(f+".labels."+k, "%s", why)
			}
		}
		if m.BMC != nil {
			if !contains(BMCDrivers, m.BMC.Driver) && m.BMC.Driver != "" {
				at(f+".bmc.driver", "unknown BMC driver %q (want %s)", m.BMC.Driver, strings.Join(BMCDrivers, ", "))
			}
			if m.BMC.Driver != "qmp" && m.BMC.Credentials == "" {
				at(f+".bmc.credentials", "name the secret that holds this BMC's user and password")
			}
		}
	}
	if masters%2 == 0 && masters > 0 {
		at("machines", "%d masters: etcd needs an odd number of members for a quorum (1, 3 or 5)", masters)
	}
	return ps
}

func checkRollout(s *Site) Problems {
	var ps Problems
	r := s.Rollout
	at := func(field, format string, args ...any) {
		ps = append(ps, problemf(s.File, field, s.Line(field), format, args...))
	}
	if r.Start != "" && r.Start != "manual" && r.Start != "auto" {
		at("rollout.start", "%q: want manual or auto", r.Start)
	}
	switch {
	case r.Upgrade != "" && r.Upgrade != UpgradeRollout && r.Upgrade != UpgradeOnReboot:
		at("rollout.upgrade", "%q: want %s (the default: machines move only in a rebuild or a rollout) or %s",
			r.Upgrade, UpgradeRollout, UpgradeOnReboot)
	case r.OnReboot() && len(s.Masters()) > 0 && !r.AllowMasters:
		at("rollout.upgrade", "%s would boot a new version on the site's masters (%d) whenever they reboot, "+
			"outside the one-master-at-a-time rule that keeps etcd's quorum; set rollout.allow_masters: true to accept that",
			r.Upgrade, len(s.Masters()))
	}
	for f, v := range map[string]int{"rollout.canary": r.Canary, "rollout.batch_size": r.BatchSize, "rollout.max_failures": r.MaxFailures} {
		if v < 0 {
			at(f, "%d must not be negative", v)
		}
	}
	checkTimeouts(at, r.Timeouts)
	return ps
}

// checkTimeouts checks the stage timeouts beyond their decoding (which
// refuses a negative one): the stall time, which power-cycles a boot again,
// must be shorter than the config timeout, which fails it, or it would
// never act.
func checkTimeouts(at func(string, string, ...any), t StageTimeouts) {
	eff := RolloutPolicy{Timeouts: t}.WithDefaults().Timeouts
	if t.Stall > 0 && eff.Stall >= eff.Config {
		at("rollout.timeouts.stall", "%s must be shorter than the config timeout (%s): a stalled boot is power-cycled again before it fails",
			eff.Stall.Std(), eff.Config.Std())
	}
}

func checkRange(at func(string, string, ...any), field string, r *Range, subnet netip.Prefix, gw netip.Addr) {
	if r == nil || !r.Start.IsValid() || !r.End.IsValid() {
		return
	}
	inSubnet(at, field+".start", r.Start, subnet)
	inSubnet(at, field+".end", r.End, subnet)
	if r.End.Less(r.Start) {
		at(field, "start %s is after end %s", r.Start, r.End)
	}
	if gw.IsValid() && r.Contains(gw) {
		at(field, "%s contains the gateway %s", r, gw)
	}
}

func inSubnet(at func(string, string, ...any), field string, a netip.Addr, p netip.Prefix) bool {
	if !a.IsValid() || !p.IsValid() {
		return false
	}
	if !p.Contains(a) {
		at(field, "%s is outside the subnet %s", a, p.Masked())
		return false
	}
	if a == p.Masked().Addr() || a == broadcast(p) {
		at(field, "%s is the network or broadcast address of %s", a, p.Masked())
		return false
	}
	return true
}

// hostIn checks a static address: inside one of the site's subnets, not the
// gateway, not inside a dynamic range (the DHCP server could hand it to an
// unknown machine).
func hostIn(at func(string, string, ...any), field string, a netip.Addr, subnets []netip.Prefix, gw netip.Addr, ranges map[string]*Range) {
	var in netip.Prefix
	for _, p := range subnets {
		if p.IsValid() && p.Contains(a) {
			in = p
		}
	}
	if !in.IsValid() {
		at(field, "%s is outside the site's subnets (%s)", a, prefixList(subnets))
		return
	}
	if !inSubnet(at, field, a, in) {
		return
	}
	if a == gw {
		at(field, "%s is the gateway", a)
	}
	for rf, r := range ranges {
		if r.Contains(a) {
			at(field, "%s is inside the dynamic range %s (%s)", a, r, rf)
		}
	}
}

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func catalogNames(images map[string]*Image) string {
	if len(images) == 0 {
		return "nothing"
	}
	var names []string
	for n := range images {
		names = append(names, n)
	}
	return strings.Join(sortedCopy(names), ", ")
}

var (
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	specRE    = regexp.MustCompile(`^3\.[0-9]+\.0$`)
	archNames = []string{"x86_64", "aarch64"}
	argNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,255}$`)
)

// checkImage runs the form checks of one catalog entry.
func checkImage(im *Image) Problems {
	var ps Problems
	at := func(field, format string, args ...any) {
		ps = append(ps, problemf(im.File, field, im.Line(field), format, args...))
	}
	if im.Ignition != "" && !specRE.MatchString(im.Ignition) {
		at("ignition", "%q is not an Ignition spec version (e.g. 3.3.0)", im.Ignition)
	}
	if im.Mode != "" && im.Mode != ImageLive && im.Mode != ImageInstall {
		at("mode", "%q: want live or install", im.Mode)
	}
	if !contains(archNames, im.Arch) {
		at("arch", "%q: want %s", im.Arch, strings.Join(archNames, " or "))
	}
	// The server writes these names unquoted into an iPXE script and a
	// kernel command line, followed by '=' and a URL.
	for _, a := range []struct{ field, v, eg string }{
		{"ignition_arg", im.IgnitionArg, "ignition.config.url"},
		{"rootfs_arg", im.RootfsArg, DefaultRootfsArg},
	} {
		if a.v != "" && !argNameRE.MatchString(a.v) {
			at(a.field, "%q is not a kernel argument name: letters, digits, '.', '_' and '-' only (e.g. %s)", a.v, a.eg)
		}
	}
	for _, a := range im.Artifacts.List() {
		f := "artifacts." + a.Name
		switch {
		case a.Path == "" && a.URL == "":
			at(f, "give a path or a url")
		case a.Path != "" && a.URL != "":
			at(f, "give a path or a url, not both")
		case a.URL != "" && !hasAnyPrefix(a.URL, "http://", "https://", "file://"):
			at(f+".url", "%q: want an http://, https:// or file:// URL", a.URL)
		case a.Path != "" && strings.Contains("/"+a.Path+"/", "/../"):
			at(f+".path", "%q must not contain ..", a.Path)
		case a.Path != "" && strings.Contains(a.Path, "://"):
			at(f+".path", "%q is a URL: give it as url", a.Path)
		}
		if a.Size < 0 {
			at(f+".size", "%d: want the artifact's length in bytes", a.Size)
		}
		if a.SHA256 != "" && !sha256RE.MatchString(a.SHA256) {
			at(f+".sha256", "%q is not a sha256 digest (64 lower-case hex digits)", a.SHA256)
		}
	}
	return ps
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func abbrev(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// checkHeartbeat checks heartbeat.interval before its default is applied,
// so an explicit 0s is refused rather than silently defaulted.
func checkHeartbeat(s *Site, ps *Problems) {
	const field = "heartbeat.interval"
	v := s.Heartbeat.Interval.Std()
	if v == 0 && s.Line(field) == 0 {
		return // unset: the default applies
	}
	if v < MinHeartbeat || v > MaxHeartbeat {
		*ps = append(*ps, problemf(s.File, field, s.Line(field), "%s: want from %s to %s (default %s)",
			v, MinHeartbeat, MaxHeartbeat, DefaultHeartbeat))
	}
}
