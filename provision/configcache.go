package provision

import (
	"container/list"
	"context"
	"errors"
	"sync"

	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
)

// DefaultConfigCache is how many rendered configs a Service keeps when
// Service.ConfigCache is 0: a few thousand machines, each at one or two
// versions (one of ~20 KB each: tens of MB at most).
const DefaultConfigCache = 4096

// configKey names what a config's per-version part depends on: everything
// in ignition.Input. A release at a commit never changes (the tracker keeps
// what the gate accepted), so the key is the whole input.
type configKey struct {
	site, version string
	mac           sites.MAC
	bootstrapped  bool
}

// configCache keeps rendered and validated configs (ignition.Render's
// output, without the per-boot file), least recently used out first. The
// first request for a key renders; those that come meanwhile wait for it
// rather than render the same config again. Failures are not kept.
type configCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *configEntry, most recent first
	byKey map[configKey]*list.Element
}

type configEntry struct {
	key   configKey
	ready chan struct{} // closed once cfg and err are set
	cfg   *ignition.Appender
	err   error
}

func newConfigCache(max int) *configCache {
	return &configCache{max: max, order: list.New(), byKey: map[configKey]*list.Element{}}
}

// get returns the config of k, rendering it with render if it is not kept,
// ready for a boot's values (an Appender never modifies what it holds).
func (c *configCache) get(k configKey, render func() (*ignition.Appender, error)) (cfg *ignition.Appender, rendered bool, err error) {
	c.mu.Lock()
	if el, ok := c.byKey[k]; ok {
		c.order.MoveToFront(el)
		e := el.Value.(*configEntry)
		c.mu.Unlock()
		<-e.ready
		return e.cfg, false, e.err
	}
	e := &configEntry{key: k, ready: make(chan struct{})}
	c.byKey[k] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*configEntry).key)
	}
	c.mu.Unlock()

	e.cfg, e.err = render()
	close(e.ready)
	if e.err != nil {
		c.mu.Lock()
		if el, ok := c.byKey[k]; ok && el.Value == e {
			c.order.Remove(el)
			delete(c.byKey, k)
		}
		c.mu.Unlock()
	}
	return e.cfg, true, e.err
}

// put keeps cfg as k's config unless k has one (or one is being
// rendered): for configs rendered elsewhere (the gate's), which must not
// replace one that requests already use.
func (c *configCache) put(k configKey, cfg *ignition.Appender) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[k]; ok {
		return
	}
	e := &configEntry{key: k, ready: make(chan struct{}), cfg: cfg}
	close(e.ready)
	c.byKey[k] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*configEntry).key)
	}
}

// retain drops the configs of site at versions keep does not hold: called
// when the site's active version changes. A machine still assigned a
// dropped version has its config rendered again once, on its next boot.
func (c *configCache) retain(site string, keep map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, el := range c.byKey {
		if k.site == site && !keep[k.version] {
			c.order.Remove(el)
			delete(c.byKey, k)
		}
	}
}

// len is how many configs are kept.
func (c *configCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// fillIdentity records iPXE's ${uuid} and ${serial} hints where the
// inventory has none. They arrive in anyone's query string, so they only
// fill what DHCP and earlier boots left empty and never create a row. The
// /ipxe path must not wait for a write on every request: the row is read
// (the first time a MAC shows these hints since the server started) and
// written only when a hint fills an empty field; after that the same hints
// cost one map look-up. The map holds one entry per MAC with a row, which
// the inventory's retention bounds.
func (s *Service) fillIdentity(ctx context.Context, mac sites.MAC, h pxe.Hints) {
	if h.UUID == "" && h.Serial == "" {
		return
	}
	seen := h.UUID + "\x00" + h.Serial
	if v, ok := s.identified.Load(mac); ok && v.(string) == seen {
		return
	}
	row, err := s.DB.Machine(ctx, mac)
	switch {
	case errors.Is(err, inventory.ErrNotFound):
		return // no row: nothing to fill
	case err != nil:
		s.log().Warn("read machine identity", "mac", mac, "err", err)
		return
	}
	if (row.UUID == "" && h.UUID != "") || (row.Serial == "" && h.Serial != "") {
		if err := s.DB.FillIdentity(ctx, mac, h.UUID, h.Serial); err != nil {
			s.log().Warn("record machine identity", "mac", mac, "err", err)
			return
		}
	}
	s.identified.Store(mac, seen)
}
