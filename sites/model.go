package sites

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Role is what a machine does in its site's Kubernetes cluster. It selects the
// Ignition config a machine gets and how a rollout treats it: masters carry
// etcd and roll one at a time.
type Role string

// The roles a site config may give a machine.
const (
	RoleMaster Role = "master"
	RoleWorker Role = "worker"
)

// Roles lists the valid roles, for error messages.
var Roles = []Role{RoleMaster, RoleWorker}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleMaster || r == RoleWorker }

// DHCPMode says how the site's DHCP server behaves on its network.
type DHCPMode string

const (
	// DHCPAuthoritative hands out addresses: reserved ones to known machines,
	// the dynamic range to unknown ones.
	DHCPAuthoritative DHCPMode = "authoritative"
	// DHCPProxy runs next to an existing DHCP server and answers only with PXE
	// boot information (ports 67 and 4011), never an address.
	DHCPProxy DHCPMode = "proxy"
)

// ImageMode says what a boot of an image does.
type ImageMode string

const (
	// ImageLive images run from the network on every boot: a reboot is a rebuild.
	ImageLive ImageMode = "live"
	// ImageInstall images install to disk once; later boots go to the local
	// disk unless a rebuild is pending, so a machine never loops installing.
	ImageInstall ImageMode = "install"
)

// MAC is a hardware address in canonical lower-case colon form
// (52:54:00:12:34:56), so it can key maps and database rows as a string.
type MAC string

// ParseMAC accepts the usual spellings of a 48-bit MAC and returns it in
// canonical form.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("not a MAC address")
	}
	if len(hw) != 6 {
		return "", fmt.Errorf("not a 48-bit MAC address")
	}
	return MAC(hw.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler for site files.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Duration is a time.Duration written as "90s" or "10m" in site files.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (use e.g. 90s, 10m, 1h)")
	}
	if v < 0 {
		return fmt.Errorf("must not be negative")
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// or returns d, or def when d is zero: how defaults are applied.
func (d Duration) or(def time.Duration) Duration {
	if d == 0 {
		return Duration(def)
	}
	return d
}

// Site is one provisioning domain as its site.yaml declares it at one config
// version: its network, its image, its cluster and its machines.
type Site struct {
	Name       string        `yaml:"-"` // the directory name under sites/
	File       string        `yaml:"-"` // sites/<name>/site.yaml
	Network    Network       `yaml:"network,required"`
	Image      string        `yaml:"image,required"` // a name in the image catalog (images/<name>.yaml)
	Cluster    Cluster       `yaml:"cluster,required"`
	SSHKeys    []string      `yaml:"ssh_keys"` // authorized keys for the core user
	KernelArgs []string      `yaml:"kernel_args"`
	Rollout    RolloutPolicy `yaml:"rollout"`
	// DiscoveryImage, when set, is booted by unknown machines (without any
	// role config); when empty, unknown machines are recorded and get nothing.
	DiscoveryImage string `yaml:"discovery_image"`
	// Mirrors are artifact mirrors its machines fetch their image from
	// before falling back to the server; see Mirror.
	Mirrors []Mirror `yaml:"mirrors"`
	// Heartbeat is how often a booted machine tells the server it is alive.
	Heartbeat Heartbeat `yaml:"heartbeat"`
	Machines  []Machine `yaml:"machines"`

	// Snippets are the optional per-site Butane or Ignition fragments merged
	// into every rendered config: keyed "common", "master" and "worker".
	Snippets map[string]Snippet `yaml:"-"`

	lines map[string]int // field path -> line in File
}

// Line returns the line of a field path in the site file, 0 if unknown.
func (s *Site) Line(path string) int { return s.lines[path] }

// Machine returns the machine with the given name, or nil.
func (s *Site) Machine(name string) *Machine {
	for i := range s.Machines {
		if s.Machines[i].Name == name {
			return &s.Machines[i]
		}
	}
	return nil
}

// MachineByMAC returns the machine with the given MAC, or nil.
func (s *Site) MachineByMAC(mac MAC) *Machine {
	for i := range s.Machines {
		if s.Machines[i].MAC == mac {
			return &s.Machines[i]
		}
	}
	return nil
}

// Masters returns the site's masters in file order, which is also the order
// of etcd's --initial-cluster.
func (s *Site) Masters() []Machine {
	var ms []Machine
	for _, m := range s.Machines {
		if m.Role == RoleMaster {
			ms = append(ms, m)
		}
	}
	return ms
}

// Mirror is an HTTP server or cache that serves the server's artifacts at
// the same paths, /images/sha256/<hex>: an nginx proxy_cache in front of
// the server, an S3 or MinIO bucket laid out by digest. A machine fetches
// its kernel and initrd from the first mirror whose selector matches it,
// and from the server when that fails; its rootfs URL names the mirror
// too, and the node checks the rootfs against the digest in that URL.
// Downloads from a mirror are not seen by the server.
type Mirror struct {
	// URL is the mirror's base URL, http(s)://host[:port][/path] without a
	// trailing slash.
	URL string `yaml:"url,required"`
	// Select picks the machines that use the mirror (ParseSelector's
	// syntax, e.g. rack=r1); empty picks every machine.
	Select string `yaml:"select"`
}

// Network is the provisioning network of a site.
type Network struct {
	// Interface is the server's interface on this network, where DHCP listens.
	Interface string       `yaml:"interface"`
	Subnet    netip.Prefix `yaml:"subnet,required"`
	Gateway   netip.Addr   `yaml:"gateway"`
	DNS       []netip.Addr `yaml:"dns"`
	Domain    string       `yaml:"domain"`
	DHCP      DHCP         `yaml:"dhcp"`
	// Relays are further subnets whose machines reach this server through a
	// DHCP relay agent (giaddr).
	Relays []Relay `yaml:"relays"`
}

// DHCP is how the site's DHCP server answers.
type DHCP struct {
	Mode DHCPMode `yaml:"mode"` // authoritative (default) or proxy
	// Range is the dynamic range for unknown machines; without one, unknown
	// machines are recorded as discovered but get no address.
	Range     *Range   `yaml:"range"`
	LeaseTime Duration `yaml:"lease_time"` // default 1h
}

// Range is an inclusive range of IPv4 addresses.
type Range struct {
	Start netip.Addr `yaml:"start,required"`
	End   netip.Addr `yaml:"end,required"`
}

// Contains reports whether a lies in the range.
func (r *Range) Contains(a netip.Addr) bool {
	return r != nil && r.Start.Compare(a) <= 0 && a.Compare(r.End) <= 0
}

func (r *Range) String() string { return r.Start.String() + "-" + r.End.String() }

// Relay is a subnet reached through a DHCP relay agent.
type Relay struct {
	Subnet  netip.Prefix `yaml:"subnet,required"`
	Gateway netip.Addr   `yaml:"gateway,required"` // the router (and usually the relay's giaddr)
	Range   *Range       `yaml:"range"`
}

// Cluster is the Kubernetes cluster a site's machines form.
type Cluster struct {
	Name   string     `yaml:"name,required"`
	APIVIP netip.Addr `yaml:"api_vip,required"` // workers join https://APIVIP:6443
}

// RolloutPolicy is how a rollout rebuilds a site's outdated machines.
type RolloutPolicy struct {
	Start       string        `yaml:"start"`        // manual (default) or auto
	Canary      int           `yaml:"canary"`       // rebuild the first N machines, then wait
	CanarySoak  Duration      `yaml:"canary_soak"`  // wait this long after the canary; 0 waits for confirmation
	Soak        Duration      `yaml:"soak"`         // wait this long after each batch before the next (not after the canary)
	BatchSize   int           `yaml:"batch_size"`   // workers rebuilt at once (default 1)
	MaxFailures int           `yaml:"max_failures"` // halt after this many failures (default 1)
	Timeouts    StageTimeouts `yaml:"timeouts"`
	// Upgrade says how a new active version reaches machines: "rollout"
	// (default), only when a rebuild or a rollout assigns it, so a machine
	// that reboots by itself boots the version it had; or "on-reboot", at
	// the next boot of every machine, outside any canary, batch or master
	// rule -- unsafe for masters (etcd), which the gate refuses unless
	// AllowMasters.
	Upgrade      string `yaml:"upgrade"`
	AllowMasters bool   `yaml:"allow_masters"` // let upgrade: on-reboot apply to a site with masters
}

// The upgrade modes of RolloutPolicy.Upgrade.
const (
	UpgradeRollout  = "rollout"
	UpgradeOnReboot = "on-reboot"
)

// OnReboot reports whether machines take the active version at their next
// boot (upgrade: on-reboot).
func (p RolloutPolicy) OnReboot() bool { return p.Upgrade == UpgradeOnReboot }

// Heartbeat configures the heartbeat timer every served config installs
// (undercloud-heartbeat.timer).
type Heartbeat struct {
	// Interval between two heartbeats, from MinHeartbeat to MaxHeartbeat;
	// DefaultHeartbeat when unset (load applies it).
	Interval Duration `yaml:"interval"`
}

// Bounds and default of heartbeat.interval. Below 10 s a fleet's heartbeats
// become load on the server and the inventory; above an hour a dead machine
// goes unnoticed for too long.
const (
	DefaultHeartbeat = 60 * time.Second
	MinHeartbeat     = 10 * time.Second
	MaxHeartbeat     = time.Hour
)

// StageTimeouts bound each stage of a rebuild; a stage that overruns fails the
// rebuild with the last boot event seen.
type StageTimeouts struct {
	PowerCycle Duration `yaml:"power_cycle"` // BMC accepted the power cycle (default 2m)
	Booting    Duration `yaml:"booting"`     // first boot request after power cycle (default 10m)
	Config     Duration `yaml:"config"`      // Ignition config served (default 10m)
	Booted     Duration `yaml:"booted"`      // booted callback on the expected version (default 15m)
	// Stall is how long a machine in the middle of its boot (in booting,
	// after its first boot step) may show no new boot step before it is
	// power-cycled again, at most a few times (default 90s). A boot that
	// lost its server mid-fetch (a restart) may give up and never ask
	// again; waiting for the config timeout would halt a rollout for
	// minutes. It must be shorter than config.
	Stall Duration `yaml:"stall"`
}

// WithDefaults returns the policy with every zero field set to its default.
func (p RolloutPolicy) WithDefaults() RolloutPolicy {
	if p.Start == "" {
		p.Start = "manual"
	}
	if p.BatchSize == 0 {
		p.BatchSize = 1
	}
	if p.MaxFailures == 0 {
		p.MaxFailures = 1
	}
	p.Timeouts.PowerCycle = p.Timeouts.PowerCycle.or(2 * time.Minute)
	p.Timeouts.Booting = p.Timeouts.Booting.or(10 * time.Minute)
	p.Timeouts.Config = p.Timeouts.Config.or(10 * time.Minute)
	p.Timeouts.Booted = p.Timeouts.Booted.or(15 * time.Minute)
	p.Timeouts.Stall = p.Timeouts.Stall.or(90 * time.Second)
	return p
}

// Machine is a known physical node.
type Machine struct {
	Name string     `yaml:"name,required"` // also its hostname
	MAC  MAC        `yaml:"mac,required"`
	Role Role       `yaml:"role,required"`
	IP   netip.Addr `yaml:"ip,required"`
	BMC  *BMC       `yaml:"bmc"`
	// Labels are free-form key/value pairs (rack, zone, ...) that
	// selectors pick machines by: a rollout of only rack=r12.
	Labels map[string]string `yaml:"labels"`
}

// BMC says how to power-cycle a machine.
type BMC struct {
	Driver  string `yaml:"driver,required"`  // ipmi, redfish or qmp
	Address string `yaml:"address,required"` // host[:port] (ipmi), URL (redfish), socket path (qmp)
	// Credentials names an entry of the server's secrets file; the password
	// itself never lives in the site repo.
	Credentials string `yaml:"credentials"`
	Insecure    bool   `yaml:"insecure"` // redfish: accept a self-signed certificate
}

// BMCDrivers are the power drivers a machine may name.
var BMCDrivers = []string{"ipmi", "redfish", "qmp"}

// Image is a named, immutable set of boot artifacts from the repo's image
// catalog (images/<name>.yaml).
type Image struct {
	Name string `yaml:"-"`
	File string `yaml:"-"`
	// Ignition is the Ignition spec version the image's OS understands; every
	// config for machines booting it is rendered in exactly this version.
	Ignition   string    `yaml:"ignition,required"`
	Mode       ImageMode `yaml:"mode,required"`
	Arch       string    `yaml:"arch"` // x86_64 (default) or aarch64
	KernelArgs []string  `yaml:"kernel_args"`
	// IgnitionArg is the kernel argument that carries the config URL:
	// ignition.config.url (default) for live images, or e.g.
	// coreos.inst.ignition_url for an installer.
	IgnitionArg string `yaml:"ignition_arg"`
	// RootfsArg is the kernel argument that carries the rootfs artifact's
	// URL, which the node's initramfs fetches and checks against the
	// digest in its path: coreos.live.rootfs_url (default), as Fedora
	// CoreOS's live PXE boot reads it.
	RootfsArg string    `yaml:"rootfs_arg"`
	Artifacts Artifacts `yaml:"artifacts,required"`

	lines map[string]int
}

// Line returns the line of a field path in the image file, 0 if unknown.
func (im *Image) Line(path string) int { return im.lines[path] }

// Artifacts are the files an image boots.
type Artifacts struct {
	Kernel Artifact  `yaml:"kernel,required"`
	Initrd Artifact  `yaml:"initrd,required"`
	Rootfs *Artifact `yaml:"rootfs"` // fetched by the node from the URL in Image.RootfsArg
}

// List returns the artifacts with their field names, in boot order.
func (a Artifacts) List() []NamedArtifact {
	l := []NamedArtifact{{"kernel", a.Kernel}, {"initrd", a.Initrd}}
	if a.Rootfs != nil {
		l = append(l, NamedArtifact{"rootfs", *a.Rootfs})
	}
	return l
}

// NamedArtifact is an artifact with its field name (kernel, initrd, rootfs).
type NamedArtifact struct {
	Name string
	Artifact
}

// Artifact is one boot file, named by content: where to get it and the
// sha256 it must have. The digest is what makes an image immutable.
type Artifact struct {
	// Path is a file on the site server inside its artifact root
	// (--artifact-root): relative to it, or absolute.
	Path   string `yaml:"path"`
	URL    string `yaml:"url"` // http(s):// or file://
	SHA256 string `yaml:"sha256,required"`
	// Size, when set, is the artifact's length in bytes: a source that
	// sends more is refused without reading on. Unset, the server's own
	// limit (--artifact-max-bytes) applies.
	Size int64 `yaml:"size"`
}

// Source returns where the artifact is fetched from: its URL or its path.
func (a Artifact) Source() string {
	if a.URL != "" {
		return a.URL
	}
	return a.Path
}

// SnippetKind says how a snippet is written.
type SnippetKind string

// The snippet formats: Butane (.bu) or Ignition JSON (.ign).
const (
	SnippetButane   SnippetKind = "butane"
	SnippetIgnition SnippetKind = "ignition"
)

// Snippet is a per-site fragment merged into generated Ignition configs.
type Snippet struct {
	File string // path in the repo, for error messages
	Kind SnippetKind
	Data []byte
}

// SnippetScopes are the snippet names a site may have: common applies to all
// machines, master and worker to that role only.
var SnippetScopes = []string{"common", "master", "worker"}

// Version is a config version: the commit a binding resolves to, with what an
// operator needs to recognise it.
type Version struct {
	Commit  string    `json:"commit"`         // full hex hash
	Ref     string    `json:"ref,omitempty"`  // what the binding said (v2, main, 3f9c2e1)
	Tags    []string  `json:"tags,omitempty"` // tags pointing at the commit
	Message string    `json:"message"`        // first line of the commit message
	Author  string    `json:"author"`
	Time    time.Time `json:"time"`
}

// Short returns the abbreviated commit hash.
func (v Version) Short() string {
	if len(v.Commit) > 12 {
		return v.Commit[:12]
	}
	return v.Commit
}

// String names a version for an operator: "v2 (91e3c32b2e34)" with its
// first tag, else the short hash.
func (v Version) String() string {
	switch {
	case len(v.Tags) == 0:
		return v.Short()
	case v.Commit == "":
		return v.Tags[0]
	}
	return v.Tags[0] + " (" + v.Short() + ")"
}

// Label is how a version is shown: its first tag, or its short hash.
func (v Version) Label() string {
	if len(v.Tags) > 0 {
		return v.Tags[0]
	}
	return v.Short()
}

// Release is one site's config at one version, with its image resolved:
// the unit the gate accepts and the server serves. Immutable once built.
type Release struct {
	Site  *Site
	Image *Image
	// Discovery is the site's discovery image (Site.DiscoveryImage), nil
	// when it names none.
	Discovery *Image
	Version   Version
}
