package rebuild

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/power"
	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/testvm/testkit"
)

// The real peers fit the engine's interfaces (the composition root wires
// them so).
var (
	_ Store = (*inventory.DB)(nil)
	_ Sites = (*sites.Tracker)(nil)
)

// fakeSites holds each site's active release.
type fakeSites struct {
	mu  sync.Mutex
	rel map[string]*sites.Release
}

func (s *fakeSites) Release(site string) *sites.Release {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rel[site]
}

func (s *fakeSites) set(rel *sites.Release) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rel[rel.Site.Name] = rel
}

// fakeBMC records the power calls of every machine's driver. A machine
// named in fail has its PXEOnce fail with that error; one named in block has
// it wait until its context ends.
type fakeBMC struct {
	mu    sync.Mutex
	calls []string // "lab-w1 pxe-once", "lab-w1 cycle"
	fail  map[string]error
	block map[string]bool
}

func (b *fakeBMC) driver(m sites.Machine) (power.Driver, error) {
	if m.BMC.Credentials == "missing" {
		return nil, fmt.Errorf("no credentials %q in the secrets file", m.BMC.Credentials)
	}
	return &fakeDriver{b: b, name: m.Name}, nil
}

func (b *fakeBMC) record(call string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, call)
}

// cycled returns the machines power-cycled, sorted: the machines of a
// batch are cycled concurrently, so the tests check the order of batches by
// what was cycled before each step.
func (b *fakeBMC) cycled() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, c := range b.calls {
		var name, op string
		fmt.Sscan(c, &name, &op)
		if op == "cycle" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

type fakeDriver struct {
	b    *fakeBMC
	name string
}

func (d *fakeDriver) Status(ctx context.Context) (power.State, error) { return power.On, nil }
func (d *fakeDriver) On(ctx context.Context) error                    { d.b.record(d.name + " on"); return nil }
func (d *fakeDriver) Off(ctx context.Context) error                   { d.b.record(d.name + " off"); return nil }
func (d *fakeDriver) Cycle(ctx context.Context) error                 { d.b.record(d.name + " cycle"); return nil }

func (d *fakeDriver) PXEOnce(ctx context.Context) error {
	d.b.record(d.name + " pxe-once")
	d.b.mu.Lock()
	err, block := d.b.fail[d.name], d.b.block[d.name]
	d.b.mu.Unlock()
	if block {
		<-ctx.Done()
		return fmt.Errorf("ipmi %s: no answer: %w", d.name, ctx.Err())
	}
	return err
}

// labRelease is site lab at newCommit (tag v2): lab-m1 master, lab-w1 and
// lab-w2 workers, batch 2, max_failures 1.
func labRelease(extra ...sites.Machine) *sites.Release {
	s := &sites.Site{Name: "lab", Machines: append([]sites.Machine{
		machine("lab-m1", sites.RoleMaster), machine("lab-w1", sites.RoleWorker), machine("lab-w2", sites.RoleWorker),
	}, extra...), Rollout: sites.RolloutPolicy{BatchSize: 2, MaxFailures: 1, Timeouts: timeouts}}
	return &sites.Release{Site: s, Version: sites.Version{Commit: newCommit, Tags: []string{"v2"}}}
}

// fixture is an engine over a real inventory in a temporary directory, on
// a fake clock, with fake sites and BMCs.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	path  string
	db    *inventory.DB
	clk   *testkit.Clock
	sites *fakeSites
	bmc   *fakeBMC
	e     *Engine
	// bootSeq numbers the boots of boot: the events recorded in between
	// carry the boot id it makes, as the HTTP path's do.
	bootSeq int
}

// newFixture declares rel's machines, has each boot oldCommit, and makes an
// engine.
func newFixture(t *testing.T, rel *sites.Release) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), path: filepath.Join(t.TempDir(), "inventory.db"),
		clk: testkit.New(t0), sites: &fakeSites{rel: map[string]*sites.Release{}}}
	f.sites.set(rel)
	f.open()
	if err := f.db.DeclareMachines(f.ctx, rel); err != nil {
		t.Fatal(err)
	}
	for _, m := range rel.Site.Machines {
		f.event(m.Name, event.Booted, oldCommit)
	}
	f.clk.Advance(time.Minute)
	return f
}

// open opens the inventory and makes a new engine over it, with a new BMC
// recorder: what a restarted server has.
func (f *fixture) open() {
	db, err := inventory.Open(f.ctx, f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	db.Now = f.clk.Now
	f.t.Cleanup(func() { db.Close() })
	f.db = db
	f.bmc = &fakeBMC{fail: map[string]error{}, block: map[string]bool{}}
	f.e = &Engine{Store: db, Sites: f.sites, Power: f.bmc.driver, Now: f.clk.Now}
}

// restart drops the engine as a kill -9 would (the inventory keeps what it
// committed) and opens a new one on the same file.
func (f *fixture) restart() {
	f.e.cycles.Wait() // no BMC call of the old engine may touch the new one's DB
	if err := f.db.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.open()
}

// settle runs passes until the BMC calls started have returned and a pass
// changes nothing more.
func (f *fixture) settle() {
	f.t.Helper()
	for range 5 {
		if err := f.e.pass(f.ctx); err != nil {
			f.t.Fatalf("pass: %v", err)
		}
		f.e.cycles.Wait()
	}
}

// event records a boot event of machine name at the clock's time, one
// second later than the previous, with the current boot's id.
func (f *fixture) event(name string, kind event.Kind, version string) {
	f.t.Helper()
	f.clk.Advance(time.Second)
	ev := inventory.Event{MAC: macOf(name), Site: "lab", Kind: kind, Version: version, BootID: fmt.Sprintf("boot-%s-%d", name, f.bootSeq)}
	if _, err := f.db.RecordSync(f.ctx, ev); err != nil {
		f.t.Fatal(err)
	}
}

// boot records a whole network boot of machine name into version, with a
// new boot id.
func (f *fixture) boot(name, version string) {
	f.t.Helper()
	f.bootSeq++
	for _, k := range []event.Kind{event.DHCPDiscover, event.IPXEScript,
		event.Artifact, event.Ignition, event.Booted} {
		v := version
		if k == event.DHCPDiscover || k == event.Artifact {
			v = ""
		}
		f.event(name, k, v)
	}
}

// rebuild returns the last rebuild of machine name.
func (f *fixture) rebuild(name string) inventory.Rebuild {
	f.t.Helper()
	rs, err := f.db.Rebuilds(f.ctx, inventory.RebuildFilter{MAC: macOf(name), Limit: 1})
	if err != nil || len(rs) == 0 {
		f.t.Fatalf("rebuild of %s: %v, %v", name, rs, err)
	}
	return rs[0]
}

// states returns the rebuild states of machine name as its timeline shows
// them, oldest first.
func (f *fixture) states(name string) []string {
	f.t.Helper()
	evs, err := f.db.Events(f.ctx, macOf(name), 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, ev := range slices.Backward(evs) {
		if ev.Kind == event.Rebuild {
			out = append(out, ev.Detail)
		}
	}
	return out
}

// machineState returns the inventory state of machine name.
func (f *fixture) machineState(name string) inventory.State {
	f.t.Helper()
	m, err := f.db.Machine(f.ctx, macOf(name))
	if err != nil {
		f.t.Fatal(err)
	}
	return m.State
}

// runEngine runs the engine's loop until the test ends.
func (f *fixture) runEngine() {
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error)
	go func() { done <- f.e.Run(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("Run: %v", err)
		}
	})
}

// waitRebuild waits, up to 5 s, until the last rebuild of machine name is
// in state want.
func (f *fixture) waitRebuild(name string, want inventory.RebuildState) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.rebuild(name).State != want {
		if time.Now().After(deadline) {
			f.t.Fatalf("rebuild of %s is %s, want %s", name, f.rebuild(name).State, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
