package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/undercloud/undercloud/images"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
)

// serveConfig is everything `undercloud serve` needs, from flags and
// UNDERCLOUD_* environment variables (a flag given on the command line wins).
type serveConfig struct {
	Repo         string
	Branch       string
	Sites        []string
	DataDir      string
	ArtifactRoot string
	Interface    string
	ServerIP     netip.Addr
	DHCP         bool
	TFTPListen   string
	Listen       string
	IPXEDir      string
	EFIBinary    string
	Refresh      time.Duration
	// BootTokenTTL is how long a boot's token reads its config and reports
	// booted; heartbeats use their own credential, which does not expire.
	BootTokenTTL time.Duration
	SecretsFile  string
	LogFormat    string
	LogLevel     slog.Level

	// The operator side: web UI, JSON API and /metrics, over TLS unless
	// OperatorTLS is false; OperatorListen empty serves none.
	OperatorListen string
	OperatorTLS    bool
	// TestHold is UNDERCLOUD_TEST_HOLD: a test hook, off when empty.
	TestHold    string
	MetricsAuth bool
	TLSCert     string
	TLSKey      string
	// Bounds on each HTTP listener and on TFTP.
	MaxConns         int
	MaxConnsPerIP    int
	TFTPMaxTransfers int
	TFTPMaxPerClient int

	// ArtifactMaxBytes caps an artifact whose catalog entry gives no size.
	ArtifactMaxBytes int64

	// Retention of what unauthenticated traffic adds to the inventory, and
	// how many new MACs per site and minute it records.
	Retention     inventory.Retention
	DiscoveryRate int
}

// envName is the environment variable that stands for a flag.
func envName(flagName string) string {
	return "UNDERCLOUD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseServe fills a serveConfig from args and the environment and checks it.
func parseServe(args []string, getenv func(string) string, stderr io.Writer) (*serveConfig, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &serveConfig{}
	var sitesList, serverIP, level string
	fs.StringVar(&c.Repo, "repo", "", "site repo: a local path, file://, http(s):// or ssh:// URL (required)")
	fs.StringVar(&c.Branch, "branch", "main", "branch of the site repo that holds bindings.yaml")
	fs.StringVar(&sitesList, "sites", "", "comma-separated sites to serve (default: every site in bindings.yaml)")
	fs.StringVar(&c.DataDir, "data-dir", "/var/lib/undercloud", "where the repo mirror, the inventory database and the image store live")
	fs.StringVar(&c.ArtifactRoot, "artifact-root", "", "the only directory local artifacts of the image catalog are read from: relative paths are resolved against it, absolute paths and file:// URLs must lie inside it (default: DATA-DIR/artifacts)")
	fs.Int64Var(&c.ArtifactMaxBytes, "artifact-max-bytes", images.DefaultMaxBytes, "largest artifact fetched, in bytes, when its catalog entry gives no size")
	fs.StringVar(&c.Interface, "interface", "", "interface DHCP listens on (default: each served site's network.interface)")
	fs.StringVar(&serverIP, "server-ip", "", "address machines reach this server at (default: the DHCP interface's IPv4 address)")
	fs.BoolVar(&c.DHCP, "dhcp", true, "serve DHCP (false: another DHCP server points machines here)")
	fs.StringVar(&c.TFTPListen, "tftp-listen", ":69", "TFTP address for the iPXE binaries (empty disables TFTP)")
	fs.StringVar(&c.Listen, "listen", ":8080", "machine-facing HTTP address: the boot endpoints and /healthz only")
	fs.StringVar(&c.OperatorListen, "operator-listen", ":8443", "operator HTTPS address: web UI, JSON API, /metrics and /healthz; put it on the management network (empty: none)")
	fs.BoolVar(&c.OperatorTLS, "operator-tls", true, "serve the operator address over TLS (false: plain HTTP, for a TLS proxy in front or a test)")
	fs.BoolVar(&c.MetricsAuth, "metrics-auth", false, "/metrics needs an API token (viewer) like the API; /debug/pprof always needs an operator")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "certificate (PEM, chain first to last) of the operator address (default: a self-signed one generated once into DATA-DIR)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.IntVar(&c.MaxConns, "max-conns", 1024, "connections each HTTP address holds at once; more are closed at once")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", 32, "connections one client address holds at once on each HTTP address")
	fs.IntVar(&c.TFTPMaxTransfers, "tftp-max-transfers", 64, "TFTP transfers under way at once; more read requests are refused")
	fs.IntVar(&c.TFTPMaxPerClient, "tftp-max-per-client", 4, "TFTP transfers one client address has under way at once")
	var retainEventsDays, retainDiscoveredDays int
	fs.IntVar(&retainEventsDays, "retain-events-days", int(inventory.DefaultRetainEventsAge/(24*time.Hour)), "boot events older than this many days are deleted (0: kept however old; a machine's last boot and what a rebuild follows are always kept)")
	fs.IntVar(&c.Retention.Events, "retain-events", inventory.DefaultRetainEvents, "boot events kept at most; the oldest beyond are deleted (0: no limit)")
	fs.IntVar(&retainDiscoveredDays, "retain-discovered-days", int(inventory.DefaultRetainDiscoveredAge/(24*time.Hour)), "discovered machines (in no site config) not seen for this many days are deleted (0: kept)")
	fs.IntVar(&c.Retention.Discovered, "retain-discovered", inventory.DefaultRetainDiscovered, "discovered machines kept at most; those seen least recently beyond are deleted (0: no limit)")
	fs.IntVar(&c.DiscoveryRate, "discover-per-minute", inventory.DefaultDiscoveryRate, "MACs never seen before recorded per site and minute; the rest of such traffic is dropped and counted in undercloud_discoveries_dropped_total")
	fs.StringVar(&c.IPXEDir, "ipxe-dir", "/usr/lib/ipxe", "directory of the iPXE binaries served over TFTP (Debian package ipxe)")
	fs.StringVar(&c.EFIBinary, "efi-binary", "ipxe.efi", "iPXE binary for x86-64 UEFI machines: ipxe.efi (own drivers) or snponly.efi (firmware's driver)")
	fs.DurationVar(&c.Refresh, "refresh", time.Minute, "how often the site repo is fetched")
	fs.DurationVar(&c.BootTokenTTL, "boot-token-ttl", pxe.DefaultTokenTTL, "how long after its script a boot may fetch its config and report booted (the slowest install's time)")
	fs.StringVar(&c.SecretsFile, "secrets", "", "secrets file (YAML, mode 0600): boot token key, API tokens, BMC credentials")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&level, "log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: undercloud serve --repo PATH_OR_URL [flags]

Runs the site server: fetches the site repo, validates each site's bound
version and serves the active one to machines over DHCP (port 67, and 4011 in
proxy mode), TFTP (69) and HTTP on --listen (boot scripts, images, Ignition
configs: nothing else). The web UI, JSON API and Prometheus metrics are on
--operator-listen, over HTTPS: put that address on the management network,
out of the machines' reach. Without --tls-cert and --tls-key the server
generates a self-signed certificate once into DATA-DIR/operator-tls.crt and
logs its SHA-256 fingerprint at every start; give that file to the CLI
(--ca, UNDERCLOUD_CA). Every boot step is recorded in DATA-DIR/inventory.db.
SIGTERM or Ctrl-C stops it cleanly.

Every flag can also be set as an environment variable: UNDERCLOUD_ and the
flag name in capitals, dashes as underscores (UNDERCLOUD_DATA_DIR).

Flags:
`)
		fs.PrintDefaults()
	}
	// Environment first, so flags given on the command line override it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return nil, usageError("%v", envErr)
	}
	if err := fs.Parse(args); err != nil {
		return nil, exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return nil, usageError("serve takes no arguments, got %q", fs.Args())
	}
	for _, s := range strings.Split(sitesList, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Sites = append(c.Sites, s)
		}
	}
	if serverIP != "" {
		a, err := netip.ParseAddr(serverIP)
		if err != nil || !a.Is4() {
			return nil, usageError("--server-ip %q: not an IPv4 address", serverIP)
		}
		c.ServerIP = a
	}
	for name, n := range map[string]int{"retain-events-days": retainEventsDays, "retain-events": c.Retention.Events,
		"retain-discovered-days": retainDiscoveredDays, "retain-discovered": c.Retention.Discovered} {
		if n < 0 {
			return nil, usageError("--%s %d: want 0 (no limit) or more", name, n)
		}
	}
	if c.DiscoveryRate < 1 {
		return nil, usageError("--discover-per-minute %d: want at least 1", c.DiscoveryRate)
	}
	// A test hook, not a flag: it holds a machine-facing request so a test
	// can kill the server at that moment (pxe.HTTP.TestHold).
	c.TestHold = getenv("UNDERCLOUD_TEST_HOLD")
	c.Retention.EventsAge = time.Duration(retainEventsDays) * 24 * time.Hour
	c.Retention.DiscoveredAge = time.Duration(retainDiscoveredDays) * 24 * time.Hour
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", level)
	}
	return c, c.check()
}

func (c *serveConfig) check() error {
	switch {
	case c.Repo == "":
		return usageError("--repo (or UNDERCLOUD_REPO) is required: the site repo to serve")
	case c.LogFormat != "text" && c.LogFormat != "json":
		return usageError("--log-format %q: want text or json", c.LogFormat)
	case c.Refresh < time.Second:
		return usageError("--refresh %s: too short (at least 1s)", c.Refresh)
	case c.BootTokenTTL < time.Minute:
		return usageError("--boot-token-ttl %s: too short (at least 1m: a boot must fetch its config and report back)", c.BootTokenTTL)
	case c.EFIBinary != "ipxe.efi" && c.EFIBinary != "snponly.efi":
		return usageError("--efi-binary %q: want ipxe.efi or snponly.efi", c.EFIBinary)
	}
	for name, addr := range map[string]string{"listen": c.Listen, "tftp-listen": c.TFTPListen, "operator-listen": c.OperatorListen} {
		if addr == "" && name != "listen" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return usageError("--%s %q: want host:port or :port", name, addr)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return usageError("--tls-cert and --tls-key go together")
	}
	for name, n := range map[string]int{"max-conns": c.MaxConns, "max-conns-per-ip": c.MaxConnsPerIP,
		"tftp-max-transfers": c.TFTPMaxTransfers, "tftp-max-per-client": c.TFTPMaxPerClient} {
		if n < 1 {
			return usageError("--%s %d: want at least 1", name, n)
		}
	}
	if c.ArtifactMaxBytes <= 0 {
		return usageError("--artifact-max-bytes %d: want a positive number of bytes", c.ArtifactMaxBytes)
	}
	if c.ArtifactRoot == "" {
		c.ArtifactRoot = filepath.Join(c.DataDir, "artifacts")
	}
	if _, err := os.Stat(c.IPXEDir); err != nil {
		return usageError("--ipxe-dir %s: %v (install the Debian package ipxe)", c.IPXEDir, err)
	}
	return nil
}

// logger builds the server's logger.
func (c *serveConfig) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
