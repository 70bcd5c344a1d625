package provision

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
)

func appender(t *testing.T) *ignition.Appender {
	a, err := ignition.NewAppender([]byte(`{"ignition":{"version":"3.0.0"}}`))
	if err != nil {
		t.Error(err)
	}
	return a
}

func TestConfigCache(t *testing.T) {
	k := func(i int) configKey { return configKey{site: "lab", version: "v1", mac: sites.MAC(fmt.Sprint(i))} }
	t.Run("one render for concurrent requests", func(t *testing.T) {
		c := newConfigCache(10)
		var renders atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cfg, _, err := c.get(k(1), func() (*ignition.Appender, error) { renders.Add(1); return appender(t), nil })
				if err != nil || cfg == nil {
					t.Errorf("get = %v, %v", cfg, err)
				}
			}()
		}
		wg.Wait()
		if n := renders.Load(); n != 1 {
			t.Errorf("%d renders, want 1", n)
		}
	})
	t.Run("bounded, least recently used out", func(t *testing.T) {
		c := newConfigCache(2)
		get := func(i int) bool {
			_, rendered, _ := c.get(k(i), func() (*ignition.Appender, error) { return appender(t), nil })
			return rendered
		}
		get(1)
		get(2)
		get(1) // 1 is now the most recent
		get(3) // evicts 2
		if c.len() != 2 || get(1) || !get(2) {
			t.Errorf("after 1,2,1,3: len %d; want 1 kept and 2 evicted", c.len())
		}
	})
	t.Run("failures are not kept", func(t *testing.T) {
		c := newConfigCache(2)
		if _, _, err := c.get(k(1), func() (*ignition.Appender, error) { return nil, errors.New("broken") }); err == nil {
			t.Fatal("no error")
		}
		if cfg, rendered, err := c.get(k(1), func() (*ignition.Appender, error) { return appender(t), nil }); err != nil || !rendered || cfg == nil {
			t.Errorf("after a failure: %v rendered=%v %v", cfg, rendered, err)
		}
	})
	t.Run("retain drops the site's other versions", func(t *testing.T) {
		c := newConfigCache(10)
		for _, key := range []configKey{{site: "lab", version: "v1"}, {site: "lab", version: "v2"}, {site: "other", version: "v1"}} {
			c.get(key, func() (*ignition.Appender, error) { return appender(t), nil })
		}
		c.retain("lab", map[string]bool{"v2": true})
		if c.len() != 2 {
			t.Errorf("%d kept, want lab@v2 and other@v1", c.len())
		}
	})
}

// Service.Config renders once per machine and version: two boots get the
// same config but for their own per-boot file, and an activation drops
// what the site no longer serves.
func TestConfigRenderedOnce(t *testing.T) {
	c := newCore(t)
	c.activate(c.v1)
	mac, v1 := string(c.mac("lab-w1")), c.v1.Version.Commit
	req := func(boot string) pxe.ConfigRequest {
		b, h := pxe.ReportURLs("http://s", mac, v1, "tok-"+boot, "hb-"+boot)
		return pxe.ConfigRequest{MAC: mac, Version: v1, BootID: boot, BootedURL: b, HeartbeatURL: h}
	}
	a, err := c.svc.Config(c.ctx, req("BOOTAAAA"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.svc.Config(c.ctx, req("BOOTBBBB"))
	if err != nil {
		t.Fatal(err)
	}
	if c.svc.cache.len() != 1 {
		t.Errorf("%d configs kept, want 1", c.svc.cache.len())
	}
	if bytes.Equal(a, b) || !bytes.Equal(bytes.ReplaceAll(a, []byte("BOOTAAAA"), []byte("BOOTBBBB")), b) {
		t.Errorf("two boots differ beyond their per-boot values")
	}
	uncached := &Service{DB: c.db, Releases: c.rels, ConfigCache: -1}
	uncached.Activate(c.ctx, c.v1, []*sites.Release{c.v1})
	if u, err := uncached.Config(c.ctx, req("BOOTAAAA")); err != nil || !bytes.Equal(u, a) {
		t.Errorf("the uncached path serves another config: %v", err)
	}
	c.activate(c.v2)
	if c.svc.cache.len() != 0 {
		t.Errorf("%d configs kept after v2 activated, want 0", c.svc.cache.len())
	}
}

// A machine's identity hints are written once; the same hints again cost
// no look-up.
func TestFillIdentityOnce(t *testing.T) {
	c := newCore(t)
	c.activate(c.v1)
	m1 := c.mac("lab-m1")
	for range 3 {
		if _, err := c.svc.Target(c.ctx, string(m1), pxe.Hints{UUID: "u-1", Serial: "SN-1"}); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok := c.svc.identified.Load(m1); !ok || v != "u-1\x00SN-1" {
		t.Errorf("identified[%s] = %v", m1, v)
	}
	if err := c.db.Flush(c.ctx); err != nil { // the identity write is queued
		t.Fatal(err)
	}
	m, err := c.db.Machine(c.ctx, m1)
	if err != nil || m.UUID != "u-1" || m.Serial != "SN-1" {
		t.Errorf("row uuid %q serial %q (%v)", m.UUID, m.Serial, err)
	}
}

// The configs the gate rendered are the ones served: kept for the site's
// present bootstrapped state only, never rendered again on request.
func TestGateRenderedKept(t *testing.T) {
	c := newCore(t)
	g := c.svc.GateRenderer()
	for i := range c.v1.Site.Machines {
		if err := g.Render(c.v1, &c.v1.Site.Machines[i]); err != nil {
			t.Fatal(err)
		}
	}
	c.activate(c.v1)
	if n, want := c.svc.cache.len(), len(c.v1.Site.Machines); n != want {
		t.Errorf("%d configs kept, want %d (one per machine, not bootstrapped)", n, want)
	}
	mac, v1 := string(c.mac("lab-w1")), c.v1.Version.Commit
	b, h := pxe.ReportURLs("http://s", mac, v1, "tok", "hb")
	req := pxe.ConfigRequest{MAC: mac, Version: v1, BootID: "BOOTAAAA", BootedURL: b, HeartbeatURL: h}
	got, err := c.svc.Config(c.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	k := configKey{site: "lab", version: v1, mac: sites.MAC(mac)}
	if _, rendered, _ := c.svc.cache.get(k, func() (*ignition.Appender, error) { return appender(t), nil }); rendered {
		t.Error("the gate's config was not kept: rendered on request")
	}
	uncached := &Service{DB: c.db, Releases: c.rels, ConfigCache: -1}
	uncached.Activate(c.ctx, c.v1, []*sites.Release{c.v1})
	if want, err := uncached.Config(c.ctx, req); err != nil || !bytes.Equal(got, want) {
		t.Errorf("the gate's config differs from one rendered on request: %v", err)
	}
	// Once the site is bootstrapped, a worker's config is still the same
	// one: only masters' configs depend on it.
	if err := c.db.MarkBootstrapped(c.ctx, "lab"); err != nil {
		t.Fatal(err)
	}
	c.svc.bootstrapped.Store("lab", true)
	n := c.svc.cache.len()
	if again, err := c.svc.Config(c.ctx, req); err != nil || !bytes.Equal(again, got) || c.svc.cache.len() != n {
		t.Errorf("worker after bootstrap: %d configs kept (was %d), same config %v, %v", c.svc.cache.len(), n, bytes.Equal(again, got), err)
	}
}
