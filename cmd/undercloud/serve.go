package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/undercloud/undercloud/dhcp"
	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/images"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/netlimit"
	"github.com/undercloud/undercloud/provision"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/rebuild"
	"github.com/undercloud/undercloud/secrets"
	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/web"
)

// server is the running site server: what serve wires together.
type server struct {
	cfg     *serveConfig
	log     *slog.Logger
	secrets *secrets.Secrets
	db      *inventory.DB
	store   *images.Store
	tracker *sites.Tracker
	refresh chan bool // on-demand refresh of the site repo (true: retry rejected versions)
	core    *provision.Service
	engine  *rebuild.Engine
	metrics *web.Metrics
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	log := cfg.logger(stderr)
	tuneGC(os.Getenv)
	sec, err := secrets.Load(cfg.SecretsFile, os.Environ())
	if err != nil {
		return err
	}
	s, err := newServer(ctx, cfg, sec, log)
	if err != nil {
		return err
	}
	defer s.close()
	return s.run(ctx)
}

// serveGCPercent is the server's GOGC unless the environment sets one. Its
// live heap is small (about 20 MB under a full DHCP load: the inventory's
// pages live outside the Go heap) while every packet allocates, so at
// Go's default of 100 the collector runs several times a second and took
// about 7 % of the CPU of a DHCP exchange. At 400 it runs a quarter as
// often, for a heap of a few tens of MB more.
const serveGCPercent = 400

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
}

// newServer opens the inventory and the site repo and makes the first
// decisions about versions, so that the server starts serving what it
// served before a restart even when the remote is down.
func newServer(ctx context.Context, cfg *serveConfig, sec *secrets.Secrets, log *slog.Logger) (*server, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	db, err := inventory.Open(ctx, filepath.Join(cfg.DataDir, "inventory.db"))
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, log: log, secrets: sec, db: db, refresh: make(chan bool, 1),
		metrics: web.NewMetrics(buildVersion())}
	if stored, unreadable := db.JournalReplayed(); stored+unreadable > 0 {
		log.Warn("inventory: stored the booted reports and DHCP leases the last run answered but had not stored (it did not stop cleanly)",
			"stored", stored, "unreadable_lines", unreadable)
	}
	s.metrics.CountFoldedEvents(db.Folded)
	db.DiscoveryRate = cfg.DiscoveryRate
	s.metrics.CountDroppedDiscoveries(db.DiscoveriesDropped)
	s.store = &images.Store{Dir: filepath.Join(cfg.DataDir, "images"), ArtifactRoot: cfg.ArtifactRoot,
		MaxBytes: cfg.ArtifactMaxBytes, Log: log}
	s.tracker = &sites.Tracker{
		Repo:   &sites.Repo{URL: cfg.Repo, Dir: filepath.Join(cfg.DataDir, "repo.git"), Log: log},
		Branch: cfg.Branch, Sites: cfg.Sites,
		Gate:  sites.Gate{Renderer: ignition.Renderer{}, Artifacts: s.store},
		Store: db, Log: log,
		OnActivate: s.activated,
	}
	s.engine = &rebuild.Engine{Store: db, Sites: s.tracker, Log: log,
		Power: powerFactory{secrets: sec, db: db, log: log}.driver, Changed: s.countOutcome}
	s.core = &provision.Service{DB: db, Releases: s.tracker, Rebuilds: s.engine, Metrics: s.metrics, Log: log}
	// The gate renders every machine's config anyway: the core keeps them.
	s.tracker.Gate.Renderer = s.core.GateRenderer()
	// The engine follows rebuilds from the stored boot steps: it is told
	// of them once they are committed.
	db.Stored = func(macs []sites.MAC) {
		for _, mac := range macs {
			s.engine.Notify(mac)
		}
	}
	restore := cfg.Sites
	if len(restore) == 0 {
		known, err := db.Sites(ctx)
		if err != nil {
			db.Close()
			return nil, err
		}
		for _, st := range known {
			restore = append(restore, st.Name)
		}
	}
	if err := s.tracker.Restore(ctx, restore); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.tracker.Refresh(ctx, false); err != nil {
		if len(s.tracker.Releases()) == 0 {
			db.Close()
			return nil, fmt.Errorf("no site can be served: %w", err)
		}
		log.Warn("site repo unreachable; serving the versions active before", "url", cfg.Repo, "err", err)
	}
	for _, st := range s.tracker.Status() {
		if st.Active == nil {
			log.Error("site has no active version: its machines get nothing until one passes the gate",
				"site", st.Site, "binding", st.Binding, "problems", st.Problems, "err", st.Error)
		}
	}
	return s, nil
}

// activated is called by the tracker when a site's active version changes.
func (s *server) activated(r *sites.Release) {
	ctx := context.Background()
	s.metrics.SiteActiveVersion(r.Site.Name, r.Version.Commit, r.Version.Label())
	if err := s.core.Activate(ctx, r, s.tracker.Releases()); err != nil {
		s.log.Error("record declared machines", "site", r.Site.Name, "version", r.Version.Commit, "err", err)
	}
	// A new version makes machines outdated: the engine retargets rebuilds
	// not yet under way and, with rollout.start: auto, starts a rollout.
	if err := s.engine.Activated(ctx, r.Site.Name); err != nil {
		s.log.Error("rollout on activation", "site", r.Site.Name, "version", r.Version.Commit, "err", err)
	}
}

// countOutcome counts finished rebuilds and rollouts for /metrics.
func (s *server) countOutcome(r *inventory.Rebuild, ro *inventory.Rollout) {
	if r != nil && !r.State.InFlight() {
		s.metrics.RebuildFinished(r.State)
	}
	if ro != nil && !ro.State.Live() {
		s.metrics.RolloutFinished(ro.State)
	}
}

func (s *server) close() {
	if err := s.db.Close(); err != nil {
		s.log.Error("close inventory", "err", err)
	}
}

// listeners are every socket the server serves, opened before anything runs
// so that a port in use is reported at once.
type listeners struct {
	http     net.Listener // machine-facing
	operator net.Listener // nil when --operator-listen is empty
	tftp     net.PacketConn
	dhcp     []dhcpListener
}

type dhcpListener struct {
	iface    string
	serverIP netip.Addr
	port     int
	conn     net.PacketConn
}

func (l *listeners) close() {
	if l.http != nil {
		l.http.Close()
	}
	if l.operator != nil {
		l.operator.Close()
	}
	if l.tftp != nil {
		l.tftp.Close()
	}
	for _, d := range l.dhcp {
		d.conn.Close()
	}
}

func (s *server) listen() (*listeners, error) {
	l := &listeners{}
	var err error
	if l.http, err = net.Listen("tcp", s.cfg.Listen); err != nil {
		return nil, fmt.Errorf("HTTP: %w", err)
	}
	if s.cfg.OperatorListen != "" {
		if l.operator, err = net.Listen("tcp", s.cfg.OperatorListen); err != nil {
			l.close()
			return nil, fmt.Errorf("operator HTTP: %w", err)
		}
	}
	if s.cfg.TFTPListen != "" {
		if l.tftp, err = net.ListenPacket("udp4", s.cfg.TFTPListen); err != nil {
			l.close()
			return nil, fmt.Errorf("TFTP: %w", err)
		}
	}
	if !s.cfg.DHCP {
		return l, nil
	}
	ifaces, skipped := provision.DHCPInterfaces(s.tracker.Releases(), s.cfg.Interface, s.cfg.ServerIP, dhcp.InterfaceAddr)
	for _, site := range skipped {
		s.log.Warn("site names no network.interface and --interface is not set: no DHCP for it", "site", site)
	}
	for _, d := range ifaces {
		if !d.ServerIP.IsValid() {
			l.close()
			return nil, fmt.Errorf("DHCP on %s: the interface has no IPv4 address in the site's subnet; give --server-ip", d.Name)
		}
		ports := []int{dhcp.ServerPort}
		if d.Proxy {
			ports = append(ports, dhcp.ProxyPort)
		}
		for _, port := range ports {
			conn, err := dhcp.Listen(d.Name, port)
			if err != nil {
				l.close()
				return nil, err
			}
			l.dhcp = append(l.dhcp, dhcpListener{iface: d.Name, serverIP: d.ServerIP, port: port, conn: conn})
		}
	}
	return l, nil
}

// run serves until ctx ends, then shuts every service down.
func (s *server) run(ctx context.Context) error {
	l, err := s.listen()
	if err != nil {
		return err
	}
	defer l.close()
	var tlsConfig *tls.Config
	if l.operator != nil && s.cfg.OperatorTLS {
		var fp, file string
		if tlsConfig, fp, file, err = operatorTLS(s.cfg); err != nil {
			return err
		}
		s.log.Info("operator TLS certificate", "file", file, "sha256", fp)
	}
	key, err := s.secrets.TokenKey(s.cfg.DataDir)
	if err != nil {
		return err
	}
	firmware := pxe.Firmware{Dir: s.cfg.IPXEDir}
	if err := firmware.Check(); err != nil {
		return err
	}
	queue := &pxe.Queue{Next: s.core, Log: s.log}
	lz := provision.NewLeases(s.db)
	events := provision.NewDHCPEvents(s.db, s.log)
	bootHTTP := &pxe.HTTP{
		Targets: s.core, Configs: s.core, Callbacks: s.core, Sources: s.core, Artifacts: s.store,
		Tokens: &pxe.Tokens{Key: key, TTL: s.cfg.BootTokenTTL}, Firmware: firmware, Leases: lz, Recorder: queue,
		Metrics: s.metrics, Log: s.log,
		TestHold: s.cfg.TestHold,
	}
	g, ctx := errgroup.WithContext(ctx)
	machineHandler, operatorHandler, err := s.handlers(ctx, bootHTTP)
	if err != nil {
		return err
	}
	g.Go(func() error { return s.tracker.Run(ctx, s.cfg.Refresh, s.refresh) })
	g.Go(func() error { return s.collectArtifacts(ctx, collectInterval) })
	g.Go(func() error { return queue.Run(ctx) })
	g.Go(func() error { return events.Run(ctx) })
	g.Go(func() error { return s.db.RunRetention(ctx, s.cfg.Retention, 0) })
	g.Go(func() error { return s.engine.Run(ctx) })
	machineLn := s.limit("machine", l.http)
	g.Go(func() error { return serveHTTP(ctx, machineLn, machineHandler, s.log) })
	if l.operator != nil {
		var operatorLn net.Listener = s.limit("operator", l.operator)
		if tlsConfig != nil {
			operatorLn = tls.NewListener(operatorLn, tlsConfig)
		}
		g.Go(func() error { return serveHTTP(ctx, operatorLn, operatorHandler, s.log) })
	}
	port := l.http.Addr().(*net.TCPAddr).Port
	if l.tftp != nil {
		tftp := &pxe.TFTP{Firmware: firmware, Leases: lz, Recorder: queue, Metrics: s.metrics, Log: s.log,
			MaxTransfers: s.cfg.TFTPMaxTransfers, MaxPerClient: s.cfg.TFTPMaxPerClient, BootPort: port}
		g.Go(func() error { return tftp.Serve(ctx, l.tftp) })
	}
	for _, d := range l.dhcp {
		ipxeScript := "" // without TFTP, iPXE fetches /boot.ipxe over HTTP
		if l.tftp != nil {
			ipxeScript = pxe.TFTPBootURL(d.serverIP, l.tftp.LocalAddr().(*net.UDPAddr).Port)
		}
		srv := &dhcp.Server{
			Iface: d.iface, ServerIP: d.serverIP, BootURL: fmt.Sprintf("http://%s:%d", d.serverIP, port), IPXEScript: ipxeScript,
			EFIBinary: s.cfg.EFIBinary, Plan: s.core, Leases: lz, Recorder: events,
			Metrics: s.metrics, Log: s.log.With("iface", d.iface),
		}
		g.Go(func() error { return srv.Serve(ctx, d.conn) })
		s.log.Info("DHCP listening", "iface", d.iface, "port", d.port, "server_ip", d.serverIP)
	}
	operatorAddr := ""
	if l.operator != nil {
		scheme := "http://"
		if tlsConfig != nil {
			scheme = "https://"
		}
		operatorAddr = scheme + l.operator.Addr().String()
	}
	s.log.Info("undercloud serving", "http", l.http.Addr().String(), "operator", operatorAddr, "sites", len(s.tracker.Releases()))
	err = g.Wait()
	if ferr := s.db.Flush(context.Background()); ferr != nil {
		s.log.Error("flush inventory", "err", ferr)
	}
	s.log.Info("undercloud stopped")
	return err
}

// handlers are the two HTTP surfaces. The machine-facing one carries pxe's
// boot endpoints and /healthz, nothing else: the provisioning network is
// anyone's to reach. The operator's carries the web UI, the JSON API,
// /metrics and /healthz, and answers 404 to the boot endpoints.
func (s *server) handlers(ctx context.Context, boot *pxe.HTTP) (machine, operator http.Handler, err error) {
	bh, err := boot.Handler()
	if err != nil {
		return nil, nil, err
	}
	ro, err := inventory.OpenReadOnly(ctx, filepath.Join(s.cfg.DataDir, "inventory.db"))
	if err != nil {
		return nil, nil, err
	}
	go func() { <-ctx.Done(); ro.Close() }()
	var tokens []web.Token
	for _, t := range s.secrets.APITokens {
		tokens = append(tokens, web.Token{Name: t.Name, Role: web.Role(t.Role), Secret: t.Token})
	}
	if len(tokens) == 0 {
		s.log.Warn("no API tokens configured (secrets file api_tokens or UNDERCLOUD_API_TOKENS): nobody can log in to the UI or use the API")
	}
	w := &web.Server{
		DB: s.db, ReadOnly: ro, Sites: siteSource{Tracker: s.tracker, refresh: s.refresh},
		Rebuilds: rebuilds{s.engine}, Tokens: tokens, Metrics: s.metrics, MetricsAuth: s.cfg.MetricsAuth,
		Log: s.log, Version: buildVersion(), Done: ctx.Done(),
	}
	wh, err := w.Handler()
	if err != nil {
		return nil, nil, err
	}
	return withHealthz(bh, s.healthz), withHealthz(wh, s.healthz), nil
}

// healthz answers 200 while some site has an active version.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	if len(s.tracker.Releases()) == 0 {
		http.Error(w, "no site has an active version", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

func withHealthz(h http.Handler, healthz http.HandlerFunc) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle("GET /healthz", healthz)
	return mux
}

// Bounds of both HTTP servers. A request's header must arrive within
// readHeaderTimeout, its body within readBodyTimeout; a response may stall
// for writeIdleTimeout per piece, however long it is in all (an artifact of
// a gigabyte); a keep-alive connection is closed after idleTimeout without
// a request.
const (
	readHeaderTimeout = 10 * time.Second
	readBodyTimeout   = 30 * time.Second
	writeIdleTimeout  = time.Minute
	idleTimeout       = time.Minute
	maxHeaderBytes    = 64 << 10
)

// limit caps ln's connections, in all and per client address, and
// publishes its open and refused connections in /metrics.
func (s *server) limit(name string, ln net.Listener) *netlimit.Listener {
	lim := netlimit.Limit(ln, s.cfg.MaxConns, s.cfg.MaxConnsPerIP, s.log.With("listener", name))
	s.metrics.CountConns(name, lim.Open, lim.Refused)
	return lim
}

// serveHTTP serves until ctx ends, then shuts down with a fresh timeout:
// requests under way (an artifact download) get a chance to finish.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           netlimit.Deadlines(h, readBodyTimeout, writeIdleTimeout),
		ConnContext:       netlimit.ConnContext, // for netlimit.Bulk
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// Failed TLS handshakes and bad requests are the clients' doing:
		// Debug, not the server's own log.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
