package provision

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	siterepo "github.com/undercloud/undercloud/examples/site-repo"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/testvm/testkit"
)

var _ Releases = (*sites.Tracker)(nil)

// fakeReleases holds the accepted releases by site@commit, as the tracker
// does (the tracker's own tests cover reading them back after a restart).
type fakeReleases struct {
	mu sync.Mutex
	m  map[string]*sites.Release
}

func (f *fakeReleases) add(r *sites.Release) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[r.Site.Name+"@"+r.Version.Commit] = r
}

func (f *fakeReleases) ReleaseAt(_ context.Context, site, commit string) (*sites.Release, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.m[site+"@"+commit]; r != nil {
		return r, nil
	}
	return nil, inventory.ErrNotFound
}

// pending is a fake rebuild engine: the MACs with a rebuild pending.
type pending map[sites.MAC]bool

func (p pending) RebuildPending(_ context.Context, mac sites.MAC) bool { return p[mac] }

// core is a Service over a real inventory in a temporary directory and the
// lab site of the example repo at v1 and v2, on a fake clock.
type core struct {
	t      *testing.T
	ctx    context.Context
	db     *inventory.DB
	rels   *fakeReleases
	svc    *Service
	v1, v2 *sites.Release
	clk    *testkit.Clock
}

func newCore(t *testing.T) *core {
	t.Helper()
	ctx := context.Background()
	tmp := t.TempDir()
	ex, err := siterepo.Build(filepath.Join(tmp, "repo"), siterepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	repo := &sites.Repo{URL: ex.Dir, Dir: filepath.Join(tmp, "mirror")}
	if err := repo.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	load := func(tag string) *sites.Release {
		v, err := repo.Resolve(tag)
		if err != nil {
			t.Fatal(err)
		}
		files, err := repo.Files(v.Commit)
		if err != nil {
			t.Fatal(err)
		}
		cfg, ps := sites.Load(files)
		if len(ps) > 0 {
			t.Fatal(ps)
		}
		rel, err := cfg.Release("lab", v)
		if err != nil {
			t.Fatal(err)
		}
		return rel
	}
	c := &core{t: t, ctx: ctx, db: openInventory(t), rels: &fakeReleases{m: map[string]*sites.Release{}},
		v1: load("v1"), v2: load("v2"), clk: testkit.New(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))}
	c.db.Now = c.clk.Now
	c.restart()
	return c
}

// restart makes a new Service over the same inventory: what a restarted
// server has until its first activation.
func (c *core) restart() {
	c.svc = &Service{DB: c.db, Releases: c.rels}
}

// activate makes rel the lab's active release.
func (c *core) activate(rel *sites.Release) {
	c.t.Helper()
	c.rels.add(rel)
	if err := c.db.RecordVersion(c.ctx, "lab", rel.Version, nil); err != nil {
		c.t.Fatal(err)
	}
	if err := c.svc.Activate(c.ctx, rel, []*sites.Release{rel}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *core) mac(name string) sites.MAC {
	c.t.Helper()
	m := c.v1.Site.Machine(name)
	if m == nil {
		c.t.Fatalf("no machine %s", name)
	}
	return m.MAC
}

// target asks what machine name boots and returns the target.
func (c *core) target(name string) pxe.Target {
	c.t.Helper()
	tg, err := c.svc.Target(c.ctx, string(c.mac(name)), pxe.Hints{})
	if err != nil {
		c.t.Fatalf("Target(%s): %v", name, err)
	}
	return tg
}

func (c *core) assigned(name string) string {
	c.t.Helper()
	if err := c.db.Flush(c.ctx); err != nil { // a first assignment is queued
		c.t.Fatal(err)
	}
	m, err := c.db.Machine(c.ctx, c.mac(name))
	if err != nil {
		c.t.Fatal(err)
	}
	return m.AssignedVersion
}

func (c *core) booted(name, version string) {
	c.t.Helper()
	c.clk.Advance(time.Second)
	if err := c.svc.Booted(c.ctx, pxe.BootReport{MAC: string(c.mac(name)), Version: version, Time: c.clk.Now()}); err != nil {
		c.t.Fatal(err)
	}
}

// withSite returns a copy of rel whose site and image are changed by fn.
func withSite(rel *sites.Release, fn func(*sites.Site, *sites.Image)) *sites.Release {
	s, im := *rel.Site, *rel.Image
	fn(&s, &im)
	return &sites.Release{Site: &s, Image: &im, Discovery: rel.Discovery, Version: rel.Version}
}

func TestAssignedVersion(t *testing.T) {
	c := newCore(t)
	v1, v2 := c.v1.Version.Commit, c.v2.Version.Commit
	c.activate(c.v1)
	if got := c.target("lab-w1").Version; got != v1 {
		t.Fatalf("first boot on v1: target version %s", got)
	}
	if got := c.assigned("lab-w1"); got != v1 {
		t.Fatalf("first boot assigned %q, want v1", got)
	}
	c.booted("lab-w1", v1)

	// v2 activates: lab-w1 reboots by itself and boots v1 again; lab-w2,
	// booting for the first time, takes v2.
	c.activate(c.v2)
	if got := c.target("lab-w1").Version; got != v1 {
		t.Errorf("after v2 activated, a reboot of lab-w1 is served %s, want its assigned v1", got)
	}
	if got := c.target("lab-w2"); got.Version != v2 || c.assigned("lab-w2") != v2 {
		t.Errorf("first boot after v2 activated: served %s, assigned %s; want v2", got.Version, c.assigned("lab-w2"))
	}

	// A server restart changes nothing.
	c.restart()
	c.activate(c.v2)
	if got := c.target("lab-w1").Version; got != v1 {
		t.Errorf("after a restart lab-w1 is served %s, want v1", got)
	}

	// A rebuild's power cycle assigns its target.
	r, err := c.db.CreateRebuild(c.ctx, inventory.Rebuild{Site: "lab", Machine: "lab-w1", MAC: c.mac("lab-w1"),
		Role: sites.RoleWorker, Target: v2, StageStarted: c.clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	next := r
	next.State = inventory.RebuildPowerCycling
	if _, err := c.db.UpdateRebuild(c.ctx, next, r.State); err != nil {
		t.Fatal(err)
	}
	if got := c.target("lab-w1").Version; got != v2 {
		t.Errorf("after its rebuild's power cycle lab-w1 is served %s, want the rebuild's v2", got)
	}

	// upgrade: on-reboot moves every machine at its next boot.
	onReboot := withSite(c.v2, func(s *sites.Site, _ *sites.Image) { s.Rollout.Upgrade = sites.UpgradeOnReboot })
	if got := c.target("lab-m1").Version; got != v2 || c.assigned("lab-m1") != v2 {
		// lab-m1 never booted: it takes v2 either way; assign it v1 to see on-reboot move it.
		t.Fatalf("lab-m1 first boot: %s", got)
	}
	if _, err := c.db.AssignVersion(c.ctx, c.mac("lab-m1"), v1, v2); err != nil {
		t.Fatal(err)
	}
	c.activate(onReboot)
	if got := c.target("lab-m1").Version; got != v2 || c.assigned("lab-m1") != v2 {
		t.Errorf("upgrade: on-reboot: lab-m1 served %s, assigned %s; want v2", got, c.assigned("lab-m1"))
	}
}

// An assigned version the server cannot serve any more is not a dead end:
// the machine boots the active version and is assigned it.
func TestAssignedVersionGone(t *testing.T) {
	c := newCore(t)
	c.activate(c.v1)
	c.target("lab-w1")
	c.rels = &fakeReleases{m: map[string]*sites.Release{}}
	c.restart()
	c.activate(c.v2)
	if got := c.target("lab-w1").Version; got != c.v2.Version.Commit || c.assigned("lab-w1") != got {
		t.Errorf("with v1 gone lab-w1 is served %s, assigned %s; want v2", got, c.assigned("lab-w1"))
	}
}

func TestConfigBootstrap(t *testing.T) {
	c := newCore(t)
	c.activate(c.v1)
	v1 := c.v1.Version.Commit
	state := func() string {
		t.Helper()
		cfg, err := c.svc.Config(c.ctx, pxe.PlaceholderRequest("http://server", string(c.mac("lab-m1")), v1))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.Contains(string(cfg), "--initial-cluster-state new"):
			return "new"
		case strings.Contains(string(cfg), "--initial-cluster-state existing"):
			return "existing"
		}
		t.Fatalf("the master's config names no --initial-cluster-state")
		return ""
	}
	if got := state(); got != "new" {
		t.Fatalf("before the master booted: %s, want new", got)
	}
	c.booted("lab-w1", v1)
	if got := state(); got != "new" {
		t.Fatalf("after a worker booted: %s, want new", got)
	}
	c.booted("lab-m1", v1)
	if got := state(); got != "existing" {
		t.Errorf("after every master booted: %s, want existing", got)
	}
	if _, err := c.svc.Config(c.ctx, pxe.PlaceholderRequest("http://server", string(c.mac("lab-m1")), "0123456789abcdef0123456789abcdef01234567")); err == nil {
		t.Error("a config at a version never accepted was served")
	}
}

func TestInstallImage(t *testing.T) {
	c := newCore(t)
	inst := withSite(c.v1, func(_ *sites.Site, im *sites.Image) { im.Mode = sites.ImageInstall })
	c.activate(inst)
	pend := pending{}
	c.svc.Rebuilds = pend
	if !c.target("lab-w1").RebuildPending {
		t.Error("first boot of an install image boots its disk, want the installer")
	}
	c.booted("lab-w1", inst.Version.Commit)
	if c.target("lab-w1").RebuildPending {
		t.Error("an installed machine with no rebuild pending runs the installer again")
	}
	pend[c.mac("lab-w1")] = true
	if !c.target("lab-w1").RebuildPending {
		t.Error("a pending rebuild boots the disk, want the installer")
	}
}

func TestDiscovery(t *testing.T) {
	c := newCore(t)
	disc := *c.v1.Image
	disc.Name = "discovery"
	rel := withSite(c.v1, func(s *sites.Site, _ *sites.Image) { s.DiscoveryImage = "discovery" })
	rel.Discovery = &disc
	c.activate(rel)
	unknown := sites.MAC("52:54:00:aa:bb:cc")
	tg, err := c.svc.Target(c.ctx, string(unknown), pxe.Hints{})
	if err != nil || tg.Kind != pxe.TargetNone {
		t.Fatalf("unknown MAC without a lease: %v %v, want nothing to boot", tg.Kind, err)
	}
	if _, err := c.db.Bind(c.ctx, inventory.LeaseRequest{MAC: unknown, IP: netip.MustParseAddr("10.99.0.150"), Site: "lab"}); err != nil {
		t.Fatal(err)
	}
	tg, err = c.svc.Target(c.ctx, string(unknown), pxe.Hints{})
	if err != nil || tg.Kind != pxe.TargetDiscovery || tg.Site != "lab" || tg.Kernel != disc.Artifacts.Kernel.SHA256 {
		t.Fatalf("unknown MAC leased on lab: %+v %v, want lab's discovery image", tg, err)
	}
	c.activate(c.v1) // a version without a discovery image
	if tg, _ := c.svc.Target(c.ctx, string(unknown), pxe.Hints{}); tg.Kind != pxe.TargetNone {
		t.Errorf("without a discovery image: %v, want nothing to boot", tg.Kind)
	}
}
