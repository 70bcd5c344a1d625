package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/undercloud/undercloud/event"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/undercloud/undercloud/dhcp"
	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/web"
)

// The composition root adapts the inventory and the tracker to the small
// interfaces the dhcp, pxe and sites packages declare.
var (
	_ dhcp.LeaseCache    = leases{}
	_ dhcp.Leases        = leases{}
	_ dhcp.Recorder      = (*dhcpEvents)(nil)
	_ pxe.Targets        = (*boots)(nil)
	_ pxe.Configs        = (*boots)(nil)
	_ pxe.Callbacks      = (*boots)(nil)
	_ pxe.Recorder       = (*boots)(nil)
	_ pxe.Leases         = leases{}
	_ sites.VersionStore = versionStore{}
)

// declineHold is how long an address a client declined (someone else
// answers on it) is kept out of the dynamic range.
const declineHold = 10 * time.Minute

// leases adapts the inventory's lease table to dhcp.Leases and pxe.Leases.
type leases struct {
	db *inventory.DB
	// offers remembers the address each MAC was just offered: the DHCP
	// server asks Offer again on the REQUEST, and the answer is the same
	// (the inventory holds the offer for inventory.DefaultOfferTime), so it
	// need not queue behind every other write to be told so.
	offers *leaseCache
	// binds remembers the leases this process committed, for lease caching.
	binds *leaseCache
}

// cacheThreshold is lease caching (Kea's cache-threshold, ISC dhcpd's
// dhcp-cache-threshold): a client that asks again within this share of its
// lease time after its lease was written gets that lease, with the time it
// has left, and nothing is written. A machine does DHCP two or three times
// in one boot (PXE ROM, iPXE, its OS); a bring-up of hundreds at once should
// not write each lease three times.
const cacheThreshold = 0.25

func newLeases(db *inventory.DB) leases {
	return leases{db: db, offers: &leaseCache{m: map[string]cachedLease{}}, binds: &leaseCache{m: map[string]cachedLease{}}}
}

func (l leases) Offer(ctx context.Context, hw net.HardwareAddr, sn dhcp.Subnet, want netip.Addr) (netip.Addr, error) {
	if sn.Range == nil {
		return netip.Addr{}, dhcp.ErrRangeFull
	}
	mac := hw.String()
	if ip, ok := l.cachedOffer(mac, sn.Site, want); ok {
		return ip, nil
	}
	lease, err := l.db.Allocate(ctx, inventory.LeaseRequest{MAC: sites.MAC(mac), IP: want, Site: sn.Site},
		sites.Range{Start: sn.Range.First, End: sn.Range.Last})
	if errors.Is(err, inventory.ErrRangeFull) {
		return netip.Addr{}, fmt.Errorf("%w: %v", dhcp.ErrRangeFull, err)
	}
	if err == nil {
		l.offers.put(mac, sn.Site, lease.IP, time.Now().Add(offerHold))
	}
	return lease.IP, err
}

// CachedOffer is the address offered a moment ago, or the lease the MAC
// holds: either is what the inventory would answer, without the round trip.
func (l leases) CachedOffer(hw net.HardwareAddr, sn dhcp.Subnet, want netip.Addr) (netip.Addr, bool) {
	if sn.Range == nil {
		return netip.Addr{}, false
	}
	return l.cachedOffer(hw.String(), sn.Site, want)
}

func (l leases) cachedOffer(mac, site string, want netip.Addr) (netip.Addr, bool) {
	for _, c := range [...]*leaseCache{l.offers, l.binds} {
		if e, ok := c.get(mac, site); ok && (!want.IsValid() || want == e.ip) {
			return e.ip, true
		}
	}
	return netip.Addr{}, false
}

func (l leases) Commit(ctx context.Context, d dhcp.Lease) (time.Time, error) {
	if exp, ok := l.CachedCommit(d); ok {
		return exp, nil
	}
	mac := d.MAC.String()
	_, err := l.db.Bind(ctx, inventory.LeaseRequest{
		MAC: sites.MAC(mac), IP: d.IP, Site: d.Site, Hostname: d.Hostname, Duration: time.Until(d.Expires),
	})
	if err != nil {
		l.forget(mac)
		if errors.Is(err, inventory.ErrConflict) {
			return time.Time{}, fmt.Errorf("%w: %v", dhcp.ErrConflict, err)
		}
		return time.Time{}, err
	}
	l.binds.put(mac, d.Site, d.IP, d.Expires)
	return d.Expires, nil
}

// CachedCommit is lease caching: the lease d asks for, committed a moment
// ago (within cacheThreshold of its time), with the time it has left.
func (l leases) CachedCommit(d dhcp.Lease) (time.Time, bool) {
	now := time.Now()
	c, ok := l.binds.get(d.MAC.String(), d.Site)
	if !ok || c.ip != d.IP || c.until.Sub(now) < time.Duration(float64(d.Expires.Sub(now))*(1-cacheThreshold)) {
		return time.Time{}, false
	}
	return c.until, true
}

func (l leases) Release(ctx context.Context, hw net.HardwareAddr, ip netip.Addr) error {
	l.forget(hw.String())
	return l.db.Release(ctx, sites.MAC(hw.String()), ip)
}

func (l leases) Decline(ctx context.Context, hw net.HardwareAddr, ip netip.Addr) error {
	l.forget(hw.String())
	return l.db.Decline(ctx, sites.MAC(hw.String()), ip, declineHold)
}

// forget drops what the caches know of a MAC: its lease changed.
func (l leases) forget(mac string) {
	l.offers.del(mac)
	l.binds.del(mac)
}

// leaseCache maps a MAC to an address on a site, valid until a time.
type leaseCache struct {
	mu sync.Mutex
	m  map[string]cachedLease
}

type cachedLease struct {
	site  string
	ip    netip.Addr
	until time.Time
}

// offerHold is how long a cached offer answers: under the inventory's
// DefaultOfferTime, so the inventory's hold always outlives the cache's.
const offerHold = inventory.DefaultOfferTime * 3 / 4

func (c *leaseCache) get(mac, site string) (cachedLease, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[mac]
	if !ok || e.site != site || !time.Now().Before(e.until) {
		return cachedLease{}, false
	}
	return e, true
}

func (c *leaseCache) put(mac, site string, ip netip.Addr, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= 100000 { // bound memory; a miss only costs an inventory round trip
		clear(c.m)
	}
	c.m[mac] = cachedLease{site: site, ip: ip, until: until}
}

func (c *leaseCache) del(mac string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, mac)
}

func (l leases) MACByIP(ctx context.Context, ip netip.Addr) (string, bool) {
	lease, err := l.db.LeaseByIP(ctx, ip)
	if err != nil || lease.MAC == "" {
		return "", false
	}
	return string(lease.MAC), true
}

// dhcpEvents records DHCP events in the inventory. Record must not block the
// packet path: the inventory buffers events and commits them in batches, and
// what a packet tells about a machine's firmware is written from a
// goroutine, once per MAC and change.
type dhcpEvents struct {
	db  *inventory.DB
	log *slog.Logger

	mu   sync.Mutex
	seen map[sites.MAC]inventory.Observation
	obs  chan inventory.Observation
}

func newDHCPEvents(db *inventory.DB, log *slog.Logger) *dhcpEvents {
	return &dhcpEvents{db: db, log: log, seen: map[sites.MAC]inventory.Observation{}, obs: make(chan inventory.Observation, 1024)}
}

var dhcpKinds = map[dhcp.Kind]event.Kind{
	dhcp.KindDiscover: event.DHCPDiscover, dhcp.KindOffer: event.DHCPOffer,
	dhcp.KindRequest: event.DHCPRequest, dhcp.KindAck: event.DHCPAck,
	dhcp.KindNak: event.DHCPNak, dhcp.KindRelease: event.DHCPRelease,
	dhcp.KindDecline: event.DHCPDecline, dhcp.KindInform: event.DHCPInform,
}

func (e *dhcpEvents) Record(ev dhcp.Event) {
	kind, ok := dhcpKinds[ev.Kind]
	if !ok || len(ev.MAC) == 0 {
		return
	}
	mac := sites.MAC(ev.MAC.String())
	// Built by hand, not through a map and encoding/json: this runs for
	// every packet of a datacenter bring-up.
	d := fmt.Appendf(make([]byte, 0, 160), `{"xid":"0x%08x"`, ev.XID)
	afterXID := len(d)
	for _, kv := range [...][2]string{{"file", ev.File}, {"firmware", firmwareName(ev.Boot.Firmware)},
		{"relay", addrString(ev.Relay)}, {"reason", ev.Reason}} {
		if kv[1] != "" {
			d = appendJSONField(d, kv[0], kv[1])
		}
	}
	if ev.Proxy {
		d = append(d, `,"proxy":true`...)
	}
	d = append(d, '}')
	detail := string(d)
	ip := ev.IP
	if kind == event.DHCPDiscover || kind == event.DHCPRequest || kind == event.DHCPNak {
		ip = netip.Addr{} // not the machine's address (yet)
	}
	if err := e.db.Record(context.Background(), inventory.Event{
		At: ev.Time, MAC: mac, Site: ev.Site, Kind: kind, IP: ip, Detail: detail,
		// A client doing DHCP again and again says the same but for the
		// xid: the inventory stores such repeats once every FoldWindow.
		Repeat: detail[afterXID:],
	}); err != nil {
		e.log.Warn("record DHCP event", "mac", mac, "err", err)
	}
	if kind == event.DHCPDiscover || kind == event.DHCPRequest {
		e.observe(mac, ev)
	}
}

func firmwareName(f dhcp.Firmware) string {
	if f == dhcp.FirmwareNone {
		return ""
	}
	return f.String()
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// appendJSONField appends ,"key":"value" with value JSON-quoted.
func appendJSONField(b []byte, key, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	if isPlainASCII(value) {
		b = append(b, '"')
		b = append(b, value...)
		return append(b, '"')
	}
	v, _ := json.Marshal(value) // rare: a value that needs escaping
	return append(b, v...)
}

// isPlainASCII reports whether s needs no JSON escaping.
func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// observe queues what the packet says about the machine's firmware when it
// is new for this MAC; it drops rather than blocks when the queue is full.
func (e *dhcpEvents) observe(mac sites.MAC, ev dhcp.Event) {
	o := inventory.Observation{MAC: mac, Site: ev.Site, UUID: ev.Boot.UUID, VendorClass: ev.Boot.VendorClass}
	if ev.Boot.HasArch {
		o.Arch = strconv.Itoa(int(ev.Boot.Arch))
	}
	e.mu.Lock()
	prev, ok := e.seen[mac]
	if ok && prev == o {
		e.mu.Unlock()
		return
	}
	if len(e.seen) > 100000 { // bound memory; a re-observation is harmless
		clear(e.seen)
	}
	e.seen[mac] = o
	e.mu.Unlock()
	select {
	case e.obs <- o:
	default:
	}
}

// Run writes observations until ctx ends.
func (e *dhcpEvents) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case o := <-e.obs:
			if err := e.db.Observe(ctx, o); err != nil && ctx.Err() == nil {
				e.log.Warn("record machine identity", "mac", o.MAC, "err", err)
			}
		}
	}
}

// boots serves the pxe package: what a machine boots, its config, its
// callbacks and its boot events.
type boots struct {
	ix      *index
	tracker *sites.Tracker
	db      *inventory.DB
	log     *slog.Logger
	// rebuildPending says whether a rebuild of mac is under way; nil: never.
	rebuildPending func(ctx context.Context, mac sites.MAC) bool
	// metrics counts renders and completed boots; nil counts nothing.
	metrics *web.Metrics
	// notify is told the MAC of every boot step recorded, so the rebuild
	// engine follows a rebuild at once instead of on its next tick.
	notify func(mac sites.MAC)
}

func (b *boots) Target(ctx context.Context, mac string, h pxe.Hints) (pxe.Target, error) {
	m := sites.MAC(mac)
	if h.UUID != "" || h.Serial != "" {
		if err := b.db.Observe(ctx, inventory.Observation{MAC: m, UUID: h.UUID, Serial: h.Serial}); err != nil {
			b.log.Warn("record machine identity", "mac", mac, "err", err)
		}
	}
	p, ok := b.ix.machine(m)
	if !ok {
		return b.unknown(ctx, m)
	}
	rel, im := p.rel, p.rel.Image
	t := imageTarget(im, rel.Site)
	t.Kind, t.Site, t.Machine, t.Role, t.Version = pxe.TargetKnown, rel.Site.Name, p.m.Name, string(p.m.Role), rel.Version.Commit
	if im.Mode == sites.ImageInstall {
		t.RebuildPending = b.installPending(ctx, m)
	}
	return t, nil
}

// installPending is whether an install image must run: the machine never
// reported a boot (a first install), or a rebuild is pending. Otherwise it
// boots its disk, so a machine never loops installing.
func (b *boots) installPending(ctx context.Context, mac sites.MAC) bool {
	if b.rebuildPending != nil && b.rebuildPending(ctx, mac) {
		return true
	}
	m, err := b.db.Machine(ctx, mac)
	return err != nil || m.CurrentVersion == ""
}

// unknown is the answer for a MAC in no site: the discovery image of the
// site whose network it leased on, or nothing.
func (b *boots) unknown(ctx context.Context, mac sites.MAC) (pxe.Target, error) {
	lease, err := b.db.LeaseByMAC(ctx, mac)
	if err != nil {
		return pxe.Target{Kind: pxe.TargetNone}, nil
	}
	rel := b.ix.release(lease.Site)
	if rel == nil || rel.Site.DiscoveryImage == "" {
		return pxe.Target{Kind: pxe.TargetNone, Site: lease.Site}, nil
	}
	files, err := b.tracker.Repo.Files(rel.Version.Commit)
	if err != nil {
		return pxe.Target{}, err
	}
	cfg, _ := sites.Load(files)
	im := cfg.Images[rel.Site.DiscoveryImage]
	if im == nil {
		return pxe.Target{Kind: pxe.TargetNone, Site: lease.Site}, nil
	}
	t := imageTarget(im, rel.Site)
	t.Kind, t.Site, t.Version = pxe.TargetDiscovery, rel.Site.Name, rel.Version.Commit
	return t, nil
}

func imageTarget(im *sites.Image, s *sites.Site) pxe.Target {
	t := pxe.Target{
		Mode: string(im.Mode), Kernel: im.Artifacts.Kernel.SHA256, Initrd: im.Artifacts.Initrd.SHA256,
		KernelArgs: append(append([]string(nil), im.KernelArgs...), s.KernelArgs...), IgnitionArg: im.IgnitionArg,
	}
	if im.Artifacts.Rootfs != nil {
		t.Rootfs = im.Artifacts.Rootfs.SHA256
	}
	return t
}

// Config renders a machine's config at the version its token names: the
// version its script was served with, so the config never changes under a
// booting machine even if a new version activated meanwhile.
func (b *boots) Config(ctx context.Context, mac, version string) ([]byte, error) {
	p, ok := b.ix.machine(sites.MAC(mac))
	if !ok {
		return nil, fmt.Errorf("%s is not a known machine: %w", mac, pxe.ErrNotFound)
	}
	site := p.rel.Site.Name
	rel, err := b.tracker.ReleaseAt(site, version)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, pxe.ErrNotFound)
	}
	m := rel.Site.MachineByMAC(sites.MAC(mac))
	if m == nil {
		return nil, fmt.Errorf("%s is not in site %s at %s: %w", mac, site, version, pxe.ErrNotFound)
	}
	st, err := b.db.Site(ctx, site)
	if err != nil {
		return nil, fmt.Errorf("site state of %s: %w", site, err)
	}
	out, err := ignition.Render(ignition.Input{Release: rel, Machine: m, Bootstrapped: st.Bootstrapped})
	if b.metrics != nil {
		b.metrics.IgnitionRendered(err == nil)
	}
	return out, err
}

// Booted records that a machine booted on a version, and marks its site
// bootstrapped once every master has booted: from then on masters are
// rendered to join the existing etcd cluster instead of creating one.
func (b *boots) Booted(ctx context.Context, r pxe.BootReport) error {
	detail, _ := json.Marshal(map[string]any{"digest": r.Digest, "hostname": r.Hostname, "files": r.Files})
	mac := sites.MAC(r.MAC)
	site := ""
	if p, ok := b.ix.machine(mac); ok {
		site = p.rel.Site.Name
	}
	if _, err := b.db.RecordSync(ctx, inventory.Event{
		At: r.Time, MAC: mac, Site: site, BootID: r.BootID, Kind: event.Booted,
		Version: r.Version, IP: r.IP, Detail: string(detail),
	}); err != nil {
		return err
	}
	if b.metrics != nil {
		if boots, err := b.db.Boots(ctx, mac, 1); err == nil && len(boots) == 1 && boots[0].Booted {
			b.metrics.BootCompleted(boots[0].Duration())
		}
	}
	if site != "" {
		if err := b.markBootstrapped(ctx, site); err != nil {
			b.log.Warn("mark site bootstrapped", "site", site, "err", err)
		}
	}
	if b.notify != nil {
		b.notify(mac)
	}
	return nil
}

func (b *boots) markBootstrapped(ctx context.Context, site string) error {
	st, err := b.db.Site(ctx, site)
	if err != nil || st.Bootstrapped {
		return err
	}
	rel := b.ix.release(site)
	if rel == nil || len(rel.Site.Masters()) == 0 {
		return nil
	}
	for _, m := range rel.Site.Masters() {
		got, err := b.db.Machine(ctx, m.MAC)
		if err != nil || got.CurrentVersion == "" {
			return nil // a master has not booted yet
		}
	}
	b.log.Info("site bootstrapped: masters now join the existing etcd cluster", "site", site)
	return b.db.MarkBootstrapped(ctx, site)
}

func (b *boots) Heartbeat(ctx context.Context, r pxe.BootReport) error {
	return b.db.Record(ctx, inventory.Event{At: r.Time, MAC: sites.MAC(r.MAC), BootID: r.BootID,
		Kind: event.Heartbeat, Version: r.Version, IP: r.IP})
}

// Record stores a pxe boot event (called from a pxe.Queue's goroutine).
// Booted and heartbeat events are stored by the callbacks themselves.
func (b *boots) Record(e pxe.Event) {
	if e.MAC == "" || e.Kind == event.Booted || e.Kind == event.Heartbeat {
		return
	}
	mac := sites.MAC(e.MAC)
	site := e.Site
	if p, ok := b.ix.machine(mac); ok && site == "" {
		site = p.rel.Site.Name
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
	if err := b.db.Record(context.Background(), inventory.Event{
		At: e.Time, MAC: mac, Site: site, BootID: e.BootID, Kind: event.Kind(e.Kind),
		Version: e.Version, Source: src, Detail: string(d),
	}); err != nil {
		b.log.Warn("record boot event", "mac", e.MAC, "err", err)
	}
	if b.notify != nil {
		b.notify(mac)
	}
}

// versionStore adapts the inventory to sites.VersionStore.
type versionStore struct{ db *inventory.DB }

func (v versionStore) ActiveCommit(ctx context.Context, site string) (string, error) {
	st, err := v.db.Site(ctx, site)
	if errors.Is(err, inventory.ErrNotFound) || (err == nil && st.Active == nil) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return st.Active.Version.Commit, nil
}

func (v versionStore) RecordVersion(ctx context.Context, site string, ver sites.Version, ps sites.Problems) error {
	_, err := v.db.RecordValidation(ctx, site, ver, ps)
	return err
}
