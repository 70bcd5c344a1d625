package provision

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/undercloud/undercloud/dhcp"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

func TestAppendJSONField(t *testing.T) {
	for _, v := range []string{"http://10.0.0.1:8080/boot.ipxe", `say "hi"\`, "tab\there", "café", ""} {
		b := append(appendJSONField([]byte("{\"a\":1"), "k", v), '}')
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil || got["k"] != v {
			t.Errorf("%q: %s -> %v %v", v, b, got, err)
		}
	}
}

// openInventory opens a fresh inventory, closed when the test ends.
func openInventory(t *testing.T) *inventory.DB {
	t.Helper()
	db, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestLeaseCaching(t *testing.T) {
	ctx := context.Background()
	db := openInventory(t)
	l := NewLeases(db)
	hw := net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0, 1}
	ip := netip.MustParseAddr("10.99.0.150")
	lease := func() dhcp.Lease {
		return dhcp.Lease{Site: "lab", MAC: hw, IP: ip, Expires: time.Now().Add(time.Hour)}
	}
	updated := func() time.Time {
		got, err := db.LeaseByMAC(ctx, sites.MAC(hw.String()))
		if err != nil {
			t.Fatal(err)
		}
		return got.Updated
	}
	first, err := l.Commit(ctx, lease())
	if err != nil {
		t.Fatal(err)
	}
	written := updated()
	time.Sleep(20 * time.Millisecond)
	again, err := l.Commit(ctx, lease())
	if err != nil || !again.Equal(first) || !updated().Equal(written) {
		t.Fatalf("a renewal a moment later: expires %v (first %v), err %v, written again: %v", again, first, err, !updated().Equal(written))
	}
	// A renewal asking for far more than the cached lease has left is written.
	long := lease()
	long.Expires = time.Now().Add(10 * time.Hour)
	// (The lease is stored to the millisecond, and its time counted from
	// the store's clock.)
	if got, err := l.Commit(ctx, long); err != nil || got.Sub(long.Expires).Abs() > 5*time.Millisecond || updated().Equal(written) {
		t.Fatalf("a renewal beyond the threshold was not written: %v %v", got, err)
	}
	// After a release the next lease is written, not taken from the cache.
	if err := l.Release(ctx, hw, ip); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.CachedCommit(lease()); ok {
		t.Fatal("a released lease was taken as held")
	}
	if _, err := l.Commit(ctx, lease()); err != nil {
		t.Fatal(err)
	}
	if got, err := db.LeaseByMAC(ctx, sites.MAC(hw.String())); err != nil || got.State != inventory.LeaseBound {
		t.Fatalf("the lease after a release: %s %v, want it bound again", got.State, err)
	}
}

// A client that holds a lease and starts over with a DISCOVER is offered
// it from the lease table without a write (here the inventory is closed, so
// a write would fail).
func TestOfferFromBoundLease(t *testing.T) {
	ctx := context.Background()
	db := openInventory(t)
	l := NewLeases(db)
	hw := net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0, 2}
	ip := netip.MustParseAddr("10.99.0.151")
	sn := dhcp.Subnet{Site: "lab", Range: &dhcp.Range{First: netip.MustParseAddr("10.99.0.100"), Last: netip.MustParseAddr("10.99.0.200")}}
	if _, err := l.Commit(ctx, dhcp.Lease{Site: "lab", MAC: hw, IP: ip, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, want := range []netip.Addr{{}, ip} {
		if got, err := l.Offer(ctx, hw, sn, want); err != nil || got != ip {
			t.Errorf("Offer(want %v) = %v, %v; want the bound %v from the cache", want, got, err, ip)
		}
	}
	// Another address, or the same MAC on another site, is the inventory's
	// to decide.
	if _, err := l.Offer(ctx, hw, sn, netip.MustParseAddr("10.99.0.160")); err == nil {
		t.Error("Offer of another address was answered without the inventory")
	}
	other := sn
	other.Site = "second"
	if _, err := l.Offer(ctx, hw, other, netip.Addr{}); err == nil {
		t.Error("Offer on another site was answered from the lab's lease")
	}
}

// DHCP events say what repeats them: the same exchange with a new xid is
// counted, not stored, while the iPXE exchange that follows the firmware's
// (another file, another firmware) is stored, and each stored event keeps
// its xid.
func TestDHCPEventsFoldRepeats(t *testing.T) {
	ctx := context.Background()
	db := openInventory(t)
	e := NewDHCPEvents(db, nil)
	hw := net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0, 2}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ip := netip.MustParseAddr("10.99.0.151")
	pxe := dhcp.Boot{Firmware: dhcp.FirmwareBIOS, HasArch: true}
	ipxe := dhcp.Boot{Firmware: dhcp.FirmwareIPXE}
	for i, ev := range []dhcp.Event{
		{Time: t0, Kind: dhcp.KindOffer, Site: "lab", MAC: hw, IP: ip, XID: 1, Boot: pxe, File: "undionly.kpxe"},
		{Time: t0.Add(time.Second), Kind: dhcp.KindOffer, Site: "lab", MAC: hw, IP: ip, XID: 2, Boot: pxe, File: "undionly.kpxe"},
		{Time: t0.Add(2 * time.Second), Kind: dhcp.KindOffer, Site: "lab", MAC: hw, IP: ip, XID: 3, Boot: ipxe, File: "http://10.99.0.1:8080/boot.ipxe"},
	} {
		e.Record(ev)
		if i == 1 && db.Folded() != 1 {
			t.Fatalf("the repeat with a new xid: Folded() = %d, want 1", db.Folded())
		}
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := db.Events(ctx, sites.MAC(hw.String()), 10)
	if err != nil {
		t.Fatal(err)
	}
	var xids []string
	for _, ev := range evs {
		var d struct{ XID string }
		if err := json.Unmarshal([]byte(ev.Detail), &d); err != nil {
			t.Fatalf("detail %q: %v", ev.Detail, err)
		}
		xids = append(xids, d.XID)
	}
	if want := []string{"0x00000003", "0x00000001"}; len(xids) != 2 || xids[0] != want[0] || xids[1] != want[1] {
		t.Errorf("stored the exchanges with xids %v, want %v", xids, want)
	}
}
