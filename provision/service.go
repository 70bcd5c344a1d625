package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
)

var (
	_ pxe.Targets   = (*Service)(nil)
	_ pxe.Configs   = (*Service)(nil)
	_ pxe.Callbacks = (*Service)(nil)
	_ pxe.Recorder  = (*Service)(nil)
	_ pxe.Sources   = (*Service)(nil)
)

// Releases gives the site versions the gate accepted; *sites.Tracker
// implements it.
type Releases interface {
	// ReleaseAt returns a site's release at an accepted commit, also one
	// accepted before the server's last start.
	ReleaseAt(ctx context.Context, site, commit string) (*sites.Release, error)
}

// Rebuilds says whether a rebuild of a machine waits for its next network
// boot; *rebuild.Engine implements it.
type Rebuilds interface {
	RebuildPending(ctx context.Context, mac sites.MAC) bool
}

// Metrics counts renders and completed boots; *web.Metrics implements it.
type Metrics interface {
	IgnitionRendered(ok bool)
	BootCompleted(d time.Duration)
}

// Service is the provisioning core. Set the fields, then call Activate with
// every active release before serving: until then every machine is unknown.
// It is safe for concurrent use.
type Service struct {
	DB       *inventory.DB // required
	Releases Releases      // required
	Rebuilds Rebuilds      // optional: nil means no rebuild is ever pending
	Metrics  Metrics       // optional
	// Neighbours is the kernel's neighbour table, for the source check of
	// machines on proxyDHCP segments; nil reads /proc/net/arp.
	Neighbours Neighbours
	Log        *slog.Logger // nil discards
	// ConfigCache bounds how many rendered configs are kept (see
	// configcache.go): 0 means DefaultConfigCache; negative keeps none, so
	// every request renders (the baseline of make bench-render).
	ConfigCache int

	ix        index
	booted    lastBoots // see heartbeat.go
	served    lastBoots
	clock     bootClock // times boots for Metrics
	cacheOnce sync.Once
	cache     *configCache // nil when ConfigCache < 0
	// identified holds the MACs whose UUID and serial the inventory has:
	// their iPXE hints need no look-up (see fillIdentity).
	identified sync.Map
	// bootstrapped caches each site's bootstrapped flag: it only ever
	// goes from false to true, and only markBootstrapped sets it.
	bootstrapped sync.Map
	marking      sync.Map // sites markBootstrapped is writing the flag of
	// snippets parses each snippet of a release once for all its
	// machines' configs (a cache miss still renders the rest).
	snippets ignition.Snippets
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Activate makes rels the active releases (one per site), called whenever
// a site's active version changes. It records the machines rel declares in
// the inventory. What a machine boots does not change with it: only its
// first boot, a rebuild or a rollout assign a version (see the package doc).
func (s *Service) Activate(ctx context.Context, rel *sites.Release, rels []*sites.Release) error {
	s.ix.update(rels)
	if c := s.configs(); c != nil {
		c.retain(rel.Site.Name, map[string]bool{rel.Version.Commit: true})
	}
	return s.DB.DeclareMachines(ctx, rel)
}

// Target decides what machine mac boots (pxe.Targets).
func (s *Service) Target(ctx context.Context, mac string, h pxe.Hints) (pxe.Target, error) {
	m := sites.MAC(mac)
	s.fillIdentity(ctx, m, h)
	p, ok := s.ix.machine(m)
	if !ok {
		return s.unknown(ctx, m)
	}
	rel, row, err := s.assigned(ctx, p)
	if err != nil {
		return pxe.Target{}, err
	}
	mach := rel.Site.MachineByMAC(m)
	t := imageTarget(rel.Image, rel.Site, *mach)
	t.Kind, t.Site, t.Machine, t.Role, t.Version = pxe.TargetKnown, rel.Site.Name, mach.Name, string(mach.Role), rel.Version.Commit
	if rel.Image.Mode == sites.ImageInstall {
		pending := s.Rebuilds != nil && s.Rebuilds.RebuildPending(ctx, m)
		t.RebuildPending = installNeeded(pending, s.everBooted(mach.MAC, row))
	}
	return t, nil
}

// assigned returns the release machine p boots and its inventory row,
// assigning a version first where chooseVersion says so.
func (s *Service) assigned(ctx context.Context, p placed) (*sites.Release, inventory.Machine, error) {
	active, mac := p.rel, p.m.MAC
	site := active.Site.Name
	for range 2 { // a second round when another request assigned meanwhile
		row, err := s.DB.Machine(ctx, mac)
		if err != nil {
			return nil, row, fmt.Errorf("machine %s of site %s: %w", mac, site, err)
		}
		rel, servable := active, false
		if a := row.AssignedVersion; a != "" && a != active.Version.Commit {
			r, err := s.Releases.ReleaseAt(ctx, site, a)
			switch {
			case err != nil:
				s.log().Warn("assigned version cannot be served: booting the active version", "site", site,
					"mac", mac, "version", a, "active", active.Version.Commit, "err", err)
			case r.Site.MachineByMAC(mac) == nil:
				s.log().Warn("assigned version does not declare the machine: booting the active version",
					"site", site, "mac", mac, "version", a, "active", active.Version.Commit)
			default:
				rel, servable = r, true
			}
		}
		v, reassign := chooseVersion(row.AssignedVersion, active.Version.Commit, active.Site.Rollout.OnReboot(), servable)
		if !reassign {
			return rel, row, nil
		}
		if row.AssignedVersion == "" { // a first boot: nothing to race with but itself
			if err := s.DB.AssignFirstVersion(ctx, mac, v); err != nil {
				return nil, row, err
			}
			s.log().Info("version assigned", "site", site, "mac", mac, "machine", p.m.Name, "version", v, "was", "")
			row.AssignedVersion = v
			return active, row, nil
		}
		ok, err := s.DB.AssignVersion(ctx, mac, v, row.AssignedVersion)
		if err != nil {
			return nil, row, err
		}
		if ok {
			s.log().Info("version assigned", "site", site, "mac", mac, "machine", p.m.Name,
				"version", v, "was", row.AssignedVersion)
			row.AssignedVersion = v
			return active, row, nil
		}
	}
	return nil, inventory.Machine{}, fmt.Errorf("machine %s of site %s: its assigned version keeps changing", mac, site)
}

// unknown is the answer for a MAC in no site: the discovery image of the
// site whose network it leased on, or nothing.
func (s *Service) unknown(ctx context.Context, mac sites.MAC) (pxe.Target, error) {
	lease, err := s.DB.LeaseByMAC(ctx, mac)
	if errors.Is(err, inventory.ErrNotFound) {
		return pxe.Target{Kind: pxe.TargetNone}, nil
	}
	if err != nil {
		return pxe.Target{}, err
	}
	rel := s.ix.release(lease.Site)
	if rel == nil || rel.Discovery == nil {
		return pxe.Target{Kind: pxe.TargetNone, Site: lease.Site}, nil
	}
	t := imageTarget(rel.Discovery, rel.Site, sites.Machine{})
	t.Kind, t.Site, t.Version = pxe.TargetDiscovery, rel.Site.Name, rel.Version.Commit
	return t, nil
}

// imageTarget is what booting image im of site s means for machine m (the
// zero Machine for an unknown one): its artifacts, its kernel arguments,
// and the mirror it fetches them from.
func imageTarget(im *sites.Image, s *sites.Site, m sites.Machine) pxe.Target {
	t := pxe.Target{
		Mode: string(im.Mode), Kernel: im.Artifacts.Kernel.SHA256, Initrd: im.Artifacts.Initrd.SHA256,
		KernelArgs: append(append([]string(nil), im.KernelArgs...), s.KernelArgs...), IgnitionArg: im.IgnitionArg,
		RootfsArg: im.RootfsArg, Mirror: chooseMirror(s.Mirrors, m),
	}
	if im.Artifacts.Rootfs != nil {
		t.Rootfs = im.Artifacts.Rootfs.SHA256
	}
	return t
}

// Config renders a machine's config at the version its token names: the
// version its script was served with (its assigned version then), so the
// config never changes under a booting machine, with the boot's values in
// it (pxe.Configs).
func (s *Service) Config(ctx context.Context, req pxe.ConfigRequest) ([]byte, error) {
	mac := sites.MAC(req.MAC)
	p, ok := s.ix.machine(mac)
	if !ok {
		return nil, fmt.Errorf("%s is not a known machine: %w", mac, pxe.ErrNotFound)
	}
	site := p.rel.Site.Name
	rel, err := s.Releases.ReleaseAt(ctx, site, req.Version)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, pxe.ErrNotFound)
	}
	m := rel.Site.MachineByMAC(mac)
	if m == nil {
		return nil, fmt.Errorf("%s is not in site %s at %s: %w", mac, site, req.Version, pxe.ErrNotFound)
	}
	boot, err := s.siteBootstrapped(ctx, site)
	if err != nil {
		return nil, fmt.Errorf("site state of %s: %w", site, err)
	}
	in := ignition.Input{Release: rel, Machine: m, Bootstrapped: boot}
	var a *ignition.Appender
	if c := s.configs(); c != nil {
		k := configKey{site: site, version: rel.Version.Commit, mac: mac, bootstrapped: boot && in.UsesBootstrapped()}
		a, _, err = c.get(k, func() (*ignition.Appender, error) { return renderWith(&s.snippets, in) })
	} else {
		a, err = render(in)
	}
	var out []byte
	if err == nil {
		out, err = withBoot(a, req)
	}
	if err == nil {
		s.served.set(mac, req.BootID) // its heartbeat credential now speaks
	}
	if s.Metrics != nil {
		s.Metrics.IgnitionRendered(err == nil)
	}
	return out, err
}

// GateRenderer is the validation gate's renderer for this Service: it
// shares the Service's parsed snippets, and the configs it renders and
// finds valid are kept for the machines' requests (see rendered), so a
// version's configs are rendered once, by the gate, rather than again on
// each machine's first boot -- all at once in a power-on storm.
func (s *Service) GateRenderer() ignition.Renderer {
	return ignition.Renderer{Snippets: &s.snippets, Rendered: s.rendered}
}

// rendered keeps a config the gate rendered and validated. A master's is
// kept if it is for the site's present bootstrapped state (the other is
// rendered when asked: keeping both would halve the machines the cache
// holds); any other machine's config is the same in both states.
func (s *Service) rendered(in ignition.Input, out []byte) {
	c := s.configs()
	if c == nil || in.Release == nil || in.Release.Site == nil || in.Machine == nil {
		return
	}
	site := in.Release.Site.Name
	boot := false
	if in.UsesBootstrapped() {
		var err error
		boot, err = s.siteBootstrapped(context.Background(), site)
		switch {
		case errors.Is(err, inventory.ErrNotFound):
			boot = false // a new site, recorded when the version is activated
		case err != nil:
			return
		}
	}
	if boot != in.Bootstrapped {
		return
	}
	a, err := ignition.NewAppender(out)
	if err != nil {
		return // rendered again when asked, and the error reported there
	}
	c.put(configKey{site: site, version: in.Release.Version.Commit, mac: in.Machine.MAC, bootstrapped: boot}, a)
}

// siteBootstrapped reads a site's bootstrapped flag, from the inventory
// the first time after a start (the flag only ever goes from false to
// true, and only markBootstrapped sets it: the /ignition path need not
// read it every time).
func (s *Service) siteBootstrapped(ctx context.Context, site string) (bool, error) {
	if v, ok := s.bootstrapped.Load(site); ok {
		return v.(bool), nil
	}
	st, err := s.DB.Site(ctx, site)
	if err != nil {
		return false, err
	}
	s.bootstrapped.LoadOrStore(site, st.Bootstrapped)
	return st.Bootstrapped, nil
}

func (s *Service) configs() *configCache {
	s.cacheOnce.Do(func() {
		switch n := s.ConfigCache; {
		case n == 0:
			s.cache = newConfigCache(DefaultConfigCache)
		case n > 0:
			s.cache = newConfigCache(n)
		}
	})
	return s.cache
}

// ServedConfig is the config of one boot: in rendered, with req's per-boot
// values; Service.Config is the same with the rendering kept. `undercloud
// render` calls it with pxe.PlaceholderRequest, so it shows what machines
// are served.
func ServedConfig(in ignition.Input, req pxe.ConfigRequest) ([]byte, error) {
	a, err := render(in)
	if err != nil {
		return nil, err
	}
	return withBoot(a, req)
}

// render renders and validates the per-version part of a config, ready for
// a boot's values.
func render(in ignition.Input) (*ignition.Appender, error) {
	out, err := ignition.Render(in)
	if err != nil {
		return nil, err
	}
	return ignition.NewAppender(out)
}

// renderWith is render with the snippets parsed once in sn, for the many
// machines of a release.
func renderWith(sn *ignition.Snippets, in ignition.Input) (*ignition.Appender, error) {
	out, err := sn.Render(in)
	if err != nil {
		return nil, err
	}
	return ignition.NewAppender(out)
}

// withBoot adds a boot's values to a rendered config.
func withBoot(rendered *ignition.Appender, req pxe.ConfigRequest) ([]byte, error) {
	out, err := rendered.WithReport(perBoot(req))
	if err != nil {
		return nil, fmt.Errorf("config of %s for boot %s: %w", req.MAC, req.BootID, err)
	}
	return out, nil
}

func perBoot(req pxe.ConfigRequest) ignition.PerBoot {
	return ignition.PerBoot{BootID: req.BootID, BootedURL: req.BootedURL, HeartbeatURL: req.HeartbeatURL}
}

// Booted records that a machine booted on a version, and marks its site
// bootstrapped once every master has booted (pxe.Callbacks).
func (s *Service) Booted(ctx context.Context, r pxe.BootReport) error {
	// agent says who sent the report: the config's undercloud-booted.service
	// sends ignition.ReportAgent.
	detail, _ := json.Marshal(map[string]any{"digest": r.Digest, "hostname": r.Hostname, "files": r.Files, "agent": r.Agent})
	mac := sites.MAC(r.MAC)
	site := ""
	if p, ok := s.ix.machine(mac); ok {
		site = p.rel.Site.Name
	}
	// Durable, not yet stored: a node waits for this answer, and in a
	// bring-up the inventory's writer is busy with thousands of boots.
	if err := s.DB.RecordDurable(ctx, inventory.Event{
		At: r.Time, MAC: mac, Site: site, BootID: r.BootID, Kind: event.Booted,
		Version: r.Version, IP: r.IP, Detail: string(detail),
	}); err != nil {
		return err
	}
	s.booted.set(mac, r.BootID) // durable: it now revokes older heartbeat credentials
	if d, ok := s.clock.booted(mac, r.Time); ok && s.Metrics != nil {
		s.Metrics.BootCompleted(d)
	}
	if site != "" {
		if err := s.markBootstrapped(ctx, site); err != nil {
			s.log().Warn("mark site bootstrapped", "site", site, "err", err)
		}
	}
	return nil
}

// everBooted reports whether mac ever reported booted: row is its
// inventory row, which shows a booted report only once the writer has
// stored it, and Booted answers once the report is durable, before that
// (inventory.DB.RecordDurable). The reports this process took count from
// the moment they were answered.
func (s *Service) everBooted(mac sites.MAC, row inventory.Machine) bool {
	if row.CurrentVersion != "" {
		return true
	}
	_, ok := s.booted.get(mac)
	return ok
}

func (s *Service) markBootstrapped(ctx context.Context, site string) error {
	if v, ok := s.bootstrapped.Load(site); ok && v.(bool) {
		return nil // it never goes back: no need to read the inventory on every report
	}
	st, err := s.DB.Site(ctx, site)
	if err != nil {
		return err
	}
	if st.Bootstrapped {
		s.bootstrapped.Store(site, true)
		return nil
	}
	rel := s.ix.release(site)
	if rel == nil {
		return nil
	}
	// The last master to report must see the others, however close
	// together they reported (everBooted).
	hasBooted := func(mac sites.MAC) bool {
		m, _ := s.DB.Machine(ctx, mac) // an error leaves m empty: not booted
		return s.everBooted(mac, m)
	}
	if !bootstrapped(rel.Site.Masters(), hasBooted) {
		return nil
	}
	// One report marks it; the others of a bring-up's wave, there at the
	// same moment, need not each wait for the same write.
	if _, busy := s.marking.LoadOrStore(site, true); busy {
		return nil
	}
	defer s.marking.Delete(site)
	s.log().Info("site bootstrapped: masters now join the existing etcd cluster", "site", site)
	if err := s.DB.MarkBootstrapped(ctx, site); err != nil {
		return err
	}
	s.bootstrapped.Store(site, true)
	return nil
}

// Record stores a pxe boot event (pxe.Recorder; called from a pxe.Queue's
// goroutine). Booted and heartbeat events are stored by the callbacks
// themselves. The rebuild engine hears of the event from the inventory once
// it is committed (inventory.DB.Stored), not from here.
func (s *Service) Record(e pxe.Event) {
	if e.MAC == "" || e.Kind == event.Booted || e.Kind == event.Heartbeat {
		return
	}
	mac := sites.MAC(e.MAC)
	site := e.Site
	if p, ok := s.ix.machine(mac); ok {
		if site == "" {
			site = p.rel.Site.Name
		}
		s.clock.step(mac, e.Kind, e.Time)
	}
	detail := map[string]any{}
	for k, v := range map[string]string{"file": e.File, "detail": e.Detail, "error": e.Error} {
		if v != "" {
			detail[k] = v
		}
	}
	if e.Bytes > 0 {
		detail["bytes"] = e.Bytes
	}
	d, _ := json.Marshal(detail)
	src := ""
	if e.IP.IsValid() {
		src = e.IP.String()
	}
	if err := s.DB.Record(context.Background(), inventory.Event{
		At: e.Time, MAC: mac, Site: site, BootID: e.BootID, Kind: e.Kind,
		Version: e.Version, Source: src, Detail: string(d),
	}); err != nil {
		s.log().Warn("record boot event", "mac", e.MAC, "err", err)
	}
}
