package provision

import (
	"testing"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
)

// iPXE's ${uuid} and ${serial} come in anyone's query string: they fill
// what a known machine lacks, never overwrite what DHCP recorded, and never
// create a machine.
func TestTargetHintsOnlyFillIdentity(t *testing.T) {
	c := newCore(t)
	c.activate(c.v1)
	m1 := c.mac("lab-m1")
	if err := c.db.Observe(c.ctx, inventory.Observation{MAC: m1, Site: "lab", UUID: "uuid-from-dhcp"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.svc.Target(c.ctx, string(m1), pxe.Hints{UUID: "forged", Serial: "SN-1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.db.Flush(c.ctx); err != nil { // the identity write is queued
		t.Fatal(err)
	}
	m, err := c.db.Machine(c.ctx, m1)
	if err != nil {
		t.Fatal(err)
	}
	if m.UUID != "uuid-from-dhcp" || m.Serial != "SN-1" {
		t.Errorf("uuid %q, serial %q: want DHCP's uuid kept, the empty serial filled", m.UUID, m.Serial)
	}
	stranger := sites.MAC("52:54:00:de:ad:01")
	if _, err := c.svc.Target(c.ctx, string(stranger), pxe.Hints{UUID: "u", Serial: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := c.db.Flush(c.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.db.Machine(c.ctx, stranger); err == nil {
		t.Error("hints of an unknown MAC created a machine row")
	}
}
