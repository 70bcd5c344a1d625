package pxe

import (
	"embed"
	"fmt"
	"net/url"
	"strings"
	"text/template"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/images"
)

// TargetKind says what the server knows about a machine that asks for a
// script.
type TargetKind int

// The kinds of Target. The zero value is TargetNone, so an empty Target boots
// nothing.
const (
	TargetNone      TargetKind = iota // unknown machine, no discovery image: nothing to boot
	TargetKnown                       // a machine of a site's config
	TargetDiscovery                   // unknown machine, booting its site's discovery image
)

// String names the kind for logs.
func (k TargetKind) String() string {
	switch k {
	case TargetNone:
		return "none"
	case TargetKnown:
		return "known"
	case TargetDiscovery:
		return "discovery"
	}
	return fmt.Sprintf("TargetKind(%d)", int(k))
}

// The image modes, as in the site repo's image catalog.
const (
	ModeLive    = "live"    // every boot runs the image from the network
	ModeInstall = "install" // boot once to install; later boots use the local disk
)

// DefaultIgnitionArg is the kernel argument that carries the config URL when
// Target.IgnitionArg is empty.
const DefaultIgnitionArg = "ignition.config.url"

// DefaultRootfsArg is the kernel argument that carries the rootfs URL when
// Target.RootfsArg is empty: the one Fedora CoreOS's live PXE initramfs
// reads.
const DefaultRootfsArg = "coreos.live.rootfs_url"

// Target is what a machine is to boot, as the Targets interface decides it
// from the active site versions and the inventory.
type Target struct {
	Kind    TargetKind
	MAC     string // canonical form; the handler fills it from the request
	Site    string
	Machine string // machine name (its hostname); empty when unknown
	Role    string // master or worker
	Version string // config version (commit) the machine boots
	Mode    string // ModeLive or ModeInstall
	// RebuildPending makes an installed machine boot the image again instead
	// of its local disk.
	RebuildPending bool
	// Kernel, Initrd and the optional Rootfs are sha256 digests in the store.
	Kernel, Initrd, Rootfs string
	// KernelArgs are the image's arguments followed by the site's.
	KernelArgs []string
	// IgnitionArg names the kernel argument carrying the config URL; empty
	// means DefaultIgnitionArg.
	IgnitionArg string
	// RootfsArg names the kernel argument carrying the rootfs URL, which
	// the node's initramfs fetches and checks against the digest in its
	// path; empty means DefaultRootfsArg.
	RootfsArg string
	// Mirror is the base URL of the artifact mirror the machine fetches
	// its kernel, initrd and rootfs from (http://host[:port][/path],
	// serving /images/sha256/<hex>); empty means the server itself. The
	// script falls back to the server when the mirror fails.
	Mirror string
}

// Action is what a machine's script makes it do.
type Action int

// The actions, decided by Target.Action.
const (
	ActionExit      Action = iota // nothing to boot: back to the firmware
	ActionLocalDisk               // installed, no rebuild pending: boot the local disk
	ActionProvision               // boot the image with a config URL (the config carries the callbacks)
	ActionDiscovery               // boot the discovery image, without any config
)

// String names the action for logs and events (Event.Detail of ipxe-script).
func (a Action) String() string {
	switch a {
	case ActionExit:
		return event.NothingToBoot
	case ActionLocalDisk:
		return "local-disk"
	case ActionProvision:
		return "provision"
	case ActionDiscovery:
		return "discovery"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Action decides what t's script does. An install image boots from the
// network only while a rebuild is pending, so a machine never loops
// installing; a live image boots from the network every time.
func (t Target) Action() Action {
	switch t.Kind {
	case TargetKnown:
		if t.Mode == ModeInstall && !t.RebuildPending {
			return ActionLocalDisk
		}
		return ActionProvision
	case TargetDiscovery:
		return ActionDiscovery
	}
	return ActionExit
}

// NeedsToken reports whether t's script carries a token (in its config URL):
// only a provisioning boot does.
func (t Target) NeedsToken() bool { return t.Action() == ActionProvision }

//go:embed scripts/*.ipxe
var scriptFiles embed.FS

// Scripts renders iPXE scripts from templates parsed once, at start-up, with
// missingkey=error. A *Scripts is safe for concurrent use.
type Scripts struct {
	t *template.Template
}

// ParseScripts parses the embedded script templates.
func ParseScripts() (*Scripts, error) {
	t, err := template.New("scripts").Option("missingkey=error").ParseFS(scriptFiles, "scripts/*.ipxe")
	if err != nil {
		return nil, fmt.Errorf("parse iPXE script templates: %w", err)
	}
	return &Scripts{t: t}, nil
}

// Chain renders the fixed script served at /boot.ipxe, which makes iPXE ask
// for its machine's script at base (e.g. http://10.0.0.1:8080).
func (s *Scripts) Chain(base string) (string, error) {
	if err := checkBase(base); err != nil {
		return "", err
	}
	return s.render("chain.ipxe", struct{ Base string }{base})
}

// TFTPBoot renders the script TFTP serves as boot.ipxe, the first one iPXE
// runs: it chains to base's /boot.ipxe (base e.g. http://10.0.0.1:8080)
// and tries again every 5 s when that fails.
func (s *Scripts) TFTPBoot(base string) (string, error) {
	if err := checkBase(base); err != nil {
		return "", err
	}
	return s.render("tftpboot.ipxe", struct{ Base string }{base})
}

// scriptData is what the machine script templates see: the target with every
// value checked and the URLs precomputed.
type scriptData struct {
	Target
	Base  string
	Query string // mac=M&version=V&token=T
	// KernelFrom and InitrdFrom are the URLs of the kernel and the initrd,
	// tried in order: the mirror's, then the server's.
	KernelFrom, InitrdFrom []string
	// RootfsURL is the rootfs's URL on the mirror or else the server, ""
	// without a rootfs.
	RootfsURL string
}

// artifactURLs returns where a machine fetches the artifact of digest hex:
// from the mirror first when it has one, then from the server. Only the
// server's URL names the machine (?mac=, for its artifact event): a
// mirror's URL is the same for every machine, so a cache in front of the
// server keeps one copy, and an S3 bucket serves it as an object key.
func artifactURLs(t Target, base, hex string) []string {
	server := base + "/images/sha256/" + hex + "?mac=" + t.MAC
	if t.Mirror == "" {
		return []string{server}
	}
	return []string{t.Mirror + "/images/sha256/" + hex, server}
}

// Script renders t's iPXE script. base is the server's URL as the machine
// reaches it; token is the boot's token, required when t.NeedsToken. Every
// value that reaches the script is checked first, since a newline in any of
// them would be a command to iPXE.
func (s *Scripts) Script(t Target, base, token string) (string, error) {
	if err := checkBase(base); err != nil {
		return "", err
	}
	if err := checkTarget(t); err != nil {
		return "", err
	}
	d := scriptData{Target: t, Base: base}
	if d.IgnitionArg == "" {
		d.IgnitionArg = DefaultIgnitionArg
	}
	if d.RootfsArg == "" {
		d.RootfsArg = DefaultRootfsArg
	}
	d.KernelFrom, d.InitrdFrom = artifactURLs(t, base, t.Kernel), artifactURLs(t, base, t.Initrd)
	if t.Rootfs != "" {
		// No ?mac=: the node checks the rootfs against the digest in the
		// URL's path, and a mirror's URL stays cacheable. The node, not
		// iPXE, fetches it: falling back to the server is its business.
		from := base
		if t.Mirror != "" {
			from = t.Mirror
		}
		d.RootfsURL = from + "/images/sha256/" + t.Rootfs
	}
	a := t.Action()
	if a == ActionProvision {
		if !isToken(token) {
			return "", fmt.Errorf("script for %s: missing or malformed token", t.MAC)
		}
		// Every value is checked to need no escaping, so the URLs read as
		// docs/boot-flow.md shows them.
		d.Query = "mac=" + t.MAC + "&version=" + t.Version + "&token=" + token
	}
	return s.render(templateFor(a), d)
}

// templateFor names the script template of an action.
func templateFor(a Action) string {
	switch a {
	case ActionLocalDisk:
		return "localdisk.ipxe"
	case ActionProvision:
		return "provision.ipxe"
	case ActionDiscovery:
		return "discovery.ipxe"
	}
	return "exit.ipxe"
}

func (s *Scripts) render(name string, data any) (string, error) {
	var b strings.Builder
	if err := s.t.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return b.String(), nil
}

// checkTarget checks every field of t that its script will show.
func checkTarget(t Target) error {
	if mac, err := parseMAC(t.MAC); err != nil || mac != t.MAC {
		return fmt.Errorf("script: %q is not a canonical MAC", t.MAC)
	}
	for _, f := range []struct{ name, v string }{{"site", t.Site}, {"machine", t.Machine}, {"role", t.Role}, {"version", t.Version}} {
		if f.v != "" && !isWord(f.v) {
			return fmt.Errorf("script for %s: %s %q has characters a script cannot carry", t.MAC, f.name, f.v)
		}
	}
	a := t.Action()
	if a != ActionProvision && a != ActionDiscovery {
		return nil
	}
	if a == ActionProvision {
		if t.Version == "" {
			return fmt.Errorf("script for %s: no version", t.MAC)
		}
		if t.Mode != ModeLive && t.Mode != ModeInstall {
			return fmt.Errorf("script for %s: image mode %q: want live or install", t.MAC, t.Mode)
		}
		if t.IgnitionArg != "" && !isWord(t.IgnitionArg) {
			return fmt.Errorf("script for %s: ignition argument %q: not a kernel argument name", t.MAC, t.IgnitionArg)
		}
	}
	if t.RootfsArg != "" && !isWord(t.RootfsArg) {
		return fmt.Errorf("script for %s: rootfs argument %q: not a kernel argument name", t.MAC, t.RootfsArg)
	}
	if t.Mirror != "" {
		if err := checkBase(t.Mirror); err != nil {
			return fmt.Errorf("script for %s: mirror: %w", t.MAC, err)
		}
	}
	if !images.IsDigest(t.Kernel) || !images.IsDigest(t.Initrd) || (t.Rootfs != "" && !images.IsDigest(t.Rootfs)) {
		return fmt.Errorf("script for %s: kernel, initrd and rootfs must be sha256 digests", t.MAC)
	}
	for _, arg := range t.KernelArgs {
		if arg == "" || strings.ContainsFunc(arg, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return fmt.Errorf("script for %s: kernel argument %q is empty or has control characters", t.MAC, arg)
		}
	}
	return nil
}

// checkBase accepts an absolute http(s) URL without query or fragment whose
// characters need no quoting in an iPXE script or a kernel command line.
func checkBase(base string) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(base, "/") {
		return fmt.Errorf("script: base URL %q: want http(s)://host[:port][/path] without a trailing slash", base)
	}
	for _, c := range base {
		if !(isWordRune(c) || strings.ContainsRune(":/[]%~", c)) {
			return fmt.Errorf("script: base URL %q has characters a script cannot carry", base)
		}
	}
	return nil
}

// isWord reports whether s is made of letters, digits, '.', '_' and '-' only:
// safe in a script, a kernel command line and a URL query without quoting.
func isWord(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range s {
		if !isWordRune(c) {
			return false
		}
	}
	return true
}

func isWordRune(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// isToken reports whether s is unpadded base64url, as Tokens.Mint makes.
func isToken(s string) bool {
	return isWord(s) && !strings.Contains(s, ".")
}
