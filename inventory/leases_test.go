package inventory

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/sites"
)

// TestLeaseLifecycle walks one address through the DHCP exchanges, checking
// the stored lease after each step.
func TestLeaseLifecycle(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	a, b, c := testMAC(1), testMAC(2), testMAC(3)
	ip5, ip6 := testIP(5), testIP(6)
	t0 := clk.Now()

	// expect checks the lease at ip (nil: none).
	expect := func(step string, ip netip.Addr, want *Lease) {
		t.Helper()
		got, err := db.LeaseByIP(ctx, ip)
		if want == nil {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: lease of %s: got %+v, %v; want ErrNotFound", step, ip, got, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if diff := cmp.Diff(*want, got, addrs()); diff != "" {
			t.Fatalf("%s: lease of %s (-want +got):\n%s", step, ip, diff)
		}
	}
	must := func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	conflict := func(step string, err error) {
		t.Helper()
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("%s: got %v, want ErrConflict", step, err)
		}
	}

	l, err := db.Offer(ctx, LeaseRequest{MAC: a, IP: ip5, Site: "lab", Hostname: "n1"})
	must("offer", err)
	offered := Lease{IP: ip5, MAC: a, Site: "lab", Hostname: "n1", State: LeaseOffered, Expires: t0.Add(DefaultOfferTime), Updated: t0}
	if diff := cmp.Diff(offered, l, addrs()); diff != "" {
		t.Fatalf("Offer returned (-want +got):\n%s", diff)
	}
	expect("offered", ip5, &offered)
	_, err = db.Offer(ctx, LeaseRequest{MAC: b, IP: ip5})
	conflict("offer of an offered address", err)

	clk.Advance(time.Second)
	_, err = db.Bind(ctx, LeaseRequest{MAC: a, IP: ip5, Site: "lab", Hostname: "n1", Duration: time.Hour})
	must("bind", err)
	bound := Lease{IP: ip5, MAC: a, Site: "lab", Hostname: "n1", State: LeaseBound, Expires: clk.Now().Add(time.Hour), Updated: clk.Now()}
	expect("bound", ip5, &bound)
	if got, err := db.LeaseByMAC(ctx, a); err != nil || !cmp.Equal(got, bound, addrs()) {
		t.Fatalf("LeaseByMAC: %+v, %v; want %+v", got, err, bound)
	}
	_, err = db.Bind(ctx, LeaseRequest{MAC: b, IP: ip5})
	conflict("bind of a bound address", err)

	// A bound client asking again (a reboot) keeps its binding.
	clk.Advance(time.Second)
	l, err = db.Offer(ctx, LeaseRequest{MAC: a, IP: ip5, Site: "lab", Hostname: "n1"})
	must("offer to the bound client", err)
	if l.State != LeaseBound || !l.Expires.Equal(bound.Expires) {
		t.Fatalf("offer to the bound client: %+v; want it bound until %s", l, bound.Expires)
	}

	// Once expired, another client takes the address; the old row goes.
	clk.Advance(2 * time.Hour)
	_, err = db.Bind(ctx, LeaseRequest{MAC: b, IP: ip5, Site: "lab"})
	must("bind of an expired address", err)
	if _, err := db.LeaseByMAC(ctx, a); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lease of the expired client: %v, want ErrNotFound", err)
	}
	_, err = db.Offer(ctx, LeaseRequest{MAC: a, IP: ip5})
	conflict("offer of b's address", err)

	// A client binding another address moves there.
	_, err = db.Bind(ctx, LeaseRequest{MAC: b, IP: ip6, Site: "lab"})
	must("move", err)
	expect("moved away", ip5, nil)

	// A release frees the address at once but keeps it as b's.
	err = db.Release(ctx, b, ip5)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("release of an address b does not hold: %v, want ErrNotFound", err)
	}
	must("release", db.Release(ctx, b, ip6))
	now := clk.Now()
	expect("released", ip6, &Lease{IP: ip6, MAC: b, Site: "lab", State: LeaseReleased, Expires: now, Updated: now})

	// A decline holds the address from everyone, b included.
	_, err = db.Bind(ctx, LeaseRequest{MAC: c, IP: ip6, Site: "lab"})
	must("bind of a released address", err)
	must("decline", db.Decline(ctx, c, ip6, 10*time.Minute))
	expect("declined", ip6, &Lease{IP: ip6, Site: "lab", State: LeaseDeclined, Expires: now.Add(10 * time.Minute), Updated: now})
	if _, err := db.LeaseByMAC(ctx, c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the declining client still has a lease: %v", err)
	}
	for _, m := range []string{string(b), string(c)} {
		_, err = db.Bind(ctx, LeaseRequest{MAC: testMACString(m), IP: ip6})
		conflict("bind of a held address by "+m, err)
	}
	clk.Advance(11 * time.Minute)
	_, err = db.Bind(ctx, LeaseRequest{MAC: c, IP: ip6, Site: "lab"})
	must("bind after the hold", err)

	// Bad input.
	if _, err := db.Bind(ctx, LeaseRequest{MAC: a, IP: netip.MustParseAddr("2001:db8::1")}); err == nil {
		t.Error("bound an IPv6 address")
	}
	if _, err := db.Bind(ctx, LeaseRequest{IP: ip5}); err == nil {
		t.Error("bound without a MAC")
	}
}

func testMACString(s string) sites.MAC { return sites.MAC(s) }

func TestLeasesOfSite(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newClock())
	for i, site := range []string{"a", "b", "a", "c", "a"} {
		if _, err := db.Bind(ctx, LeaseRequest{MAC: testMAC(i), IP: testIP(100 - i), Site: site}); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := db.Leases(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range ls {
		got = append(got, l.IP.String()+" "+string(l.MAC))
	}
	want := []string{"10.0.0.96 " + string(testMAC(4)), "10.0.0.98 " + string(testMAC(2)), "10.0.0.100 " + string(testMAC(0))}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("leases of a (-want +got):\n%s", diff)
	}
	if all, err := db.Leases(ctx, ""); err != nil || len(all) != 5 {
		t.Errorf("all leases: %d, %v", len(all), err)
	}
}

// LeaseNow answers at once: a lease, or no answer while a change holds the
// table (the DHCP reader then hands the packet to a worker).
func TestLeaseNow(t *testing.T) {
	db := openTest(t, nil)
	if _, err := db.Bind(context.Background(), LeaseRequest{MAC: testMAC(1), IP: testIP(1)}); err != nil {
		t.Fatal(err)
	}
	if l, ok := db.LeaseNow(testMAC(1)); !ok || l.IP != testIP(1) {
		t.Fatalf("LeaseNow = %v, %t; want the bound %s", l.IP, ok, testIP(1))
	}
	if _, ok := db.LeaseNow(testMAC(2)); ok {
		t.Error("LeaseNow found a lease for a MAC without one")
	}
	db.leases.mu.Lock()
	_, ok := db.LeaseNow(testMAC(1))
	db.leases.mu.Unlock()
	if ok {
		t.Error("LeaseNow answered while the table was held")
	}
}
