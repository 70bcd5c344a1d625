package ignition

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/coreos/ignition/v2/config/v3_0/types"
	"github.com/undercloud/undercloud/sites"
)

// Paths the generated config writes; tests and other packages may rely on them.
const (
	HostnamePath = "/etc/hostname"
	// NetworkPath is the NetworkManager keyfile with the machine's static
	// address; 0600 because NetworkManager ignores keyfiles others can read.
	NetworkPath = "/etc/NetworkManager/system-connections/undercloud.nmconnection"
	// VersionPath tells a node (and the tests) which config version built it.
	VersionPath = "/etc/undercloud/version"
)

// base builds the generated part of a machine's config in spec 3.0.0, the
// oldest supported: everything it needs (files, units, users) exists there
// unchanged, and Ignition's own translators carry it up to any later version.
// snippetPaths are what the site's snippets write, for the reporter's list
// of written files (see report.go).
func base(in Input, snippetPaths []string) (types.Config, error) {
	s, m := in.Release.Site, in.Machine
	netFile, err := networkKeyfile(s, m)
	if err != nil {
		return types.Config{}, err
	}
	c := types.Config{Ignition: types.Ignition{Version: "3.0.0"}}
	core := types.PasswdUser{Name: "core"}
	for _, k := range s.SSHKeys {
		core.SSHAuthorizedKeys = append(core.SSHAuthorizedKeys, types.SSHAuthorizedKey(k))
	}
	c.Passwd.Users = []types.PasswdUser{core}
	c.Storage.Files = []types.File{
		file(HostnamePath, 0o644, m.Name+"\n"),
		file(NetworkPath, 0o600, netFile),
		file(VersionPath, 0o644, versionFile(in.Release, m)),
	}
	var units []types.Unit
	switch m.Role {
	case sites.RoleMaster:
		files, us := master(s, m, in.Bootstrapped)
		c.Storage.Files = append(c.Storage.Files, files...)
		units = append(units, us...)
	case sites.RoleWorker:
		files, us := worker(s, m)
		c.Storage.Files = append(c.Storage.Files, files...)
		units = append(units, us...)
	default:
		return types.Config{}, fmt.Errorf("machine %s: unknown role %q", m.Name, m.Role)
	}
	units = append(units, reportUnits(s.Heartbeat.Interval.Std())...)
	c.Systemd.Units = units
	// The reporter lists every path the config writes, itself included.
	c.Storage.Files = append(c.Storage.Files, file(ReporterPath, 0o755, ""))
	paths, err := writtenPaths(c)
	if err != nil {
		return types.Config{}, err
	}
	script, err := reporterScript(append(paths, snippetPaths...))
	if err != nil {
		return types.Config{}, fmt.Errorf("machine %s: %w", m.Name, err)
	}
	c.Storage.Files[len(c.Storage.Files)-1] = file(ReporterPath, 0o755, script)
	return c, nil
}

// addressing finds the subnet the machine's IP is in: the site's own, or a
// relay's, whose router is then the machine's gateway.
func addressing(s *sites.Site, m *sites.Machine) (netip.Prefix, netip.Addr, error) {
	n := s.Network
	if n.Subnet.IsValid() && n.Subnet.Contains(m.IP) {
		return netip.PrefixFrom(m.IP, n.Subnet.Bits()), n.Gateway, nil
	}
	for _, r := range n.Relays {
		if r.Subnet.IsValid() && r.Subnet.Contains(m.IP) {
			return netip.PrefixFrom(m.IP, r.Subnet.Bits()), r.Gateway, nil
		}
	}
	return netip.Prefix{}, netip.Addr{}, fmt.Errorf("machine %s: ip %s is in none of site %s's subnets", m.Name, m.IP, s.Name)
}

// networkKeyfile is a NetworkManager keyfile that gives the NIC with the
// machine's MAC its static address. Matching by MAC, not interface name,
// because names differ between firmware, kernels and images.
func networkKeyfile(s *sites.Site, m *sites.Machine) (string, error) {
	addr, gw, err := addressing(s, m)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("[connection]\nid=undercloud\ntype=ethernet\nautoconnect=true\n\n")
	fmt.Fprintf(&b, "[ethernet]\nmac-address=%s\n\n", m.MAC)
	fmt.Fprintf(&b, "[ipv4]\nmethod=manual\naddress1=%s\n", addr)
	if gw.IsValid() {
		fmt.Fprintf(&b, "gateway=%s\n", gw)
	}
	if len(s.Network.DNS) > 0 {
		b.WriteString("dns=")
		for _, d := range s.Network.DNS {
			b.WriteString(d.String() + ";")
		}
		b.WriteString("\n")
	}
	if s.Network.Domain != "" {
		fmt.Fprintf(&b, "dns-search=%s;\n", s.Network.Domain)
	}
	b.WriteString("may-fail=false\n\n[ipv6]\nmethod=disabled\n")
	return b.String(), nil
}

// versionFile is shell-sourceable key=value lines.
func versionFile(r *sites.Release, m *sites.Machine) string {
	return fmt.Sprintf("site=%s\nmachine=%s\nrole=%s\nversion=%s\nlabel=%s\n",
		r.Site.Name, m.Name, m.Role, r.Version.Commit, r.Version.Label())
}

// unitFile renders a unit with [Unit], [Service] and an [Install] section:
// Ignition warns about an enabled unit without one, and the gate treats
// warnings as errors.
func unitFile(unitSection, service []string) string {
	var b strings.Builder
	b.WriteString("[Unit]\n")
	for _, l := range unitSection {
		b.WriteString(l + "\n")
	}
	b.WriteString("\n[Service]\n")
	for _, l := range service {
		b.WriteString(l + "\n")
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String()
}

func unit(name, contents string) types.Unit {
	return types.Unit{Name: name, Enabled: ptr(true), Contents: ptr(contents)}
}

// file is a whole file written by Ignition. Overwrite is set because the
// image may ship a default (/etc/hostname does), and spec 3.0 fails on an
// existing file otherwise.
func file(path string, mode int, contents string) types.File {
	return types.File{
		Node: types.Node{Path: path, Overwrite: ptr(true)},
		FileEmbedded1: types.FileEmbedded1{
			Mode:     ptr(mode),
			Contents: types.FileContents{Source: ptr(dataURL(contents))},
		},
	}
}

// dataURL encodes s as an RFC 2397 data URL. It keeps RFC 2396 unreserved
// characters and the reserved ones that read well in a config (/:=,;@)
// and percent-encodes the rest; ? and # are encoded too, because Ignition
// runs the source through net/url before decoding it.
func dataURL(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.WriteString("data:,")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-_.!~*'()/:=,;@", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

func ptr[T any](v T) *T { return &v }
