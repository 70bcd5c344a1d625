package inventory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/sites"
)

// A spoofed DECLINE of a declared machine's reserved address (its MAC, its
// address) changes nothing: the lease stays bound to it, and the machine's
// next offer and bind succeed. A discovered machine's decline still holds.
func TestDeclineOfReservation(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	if err := db.DeclareMachines(ctx, release("c1", decl("n1", 1, sites.RoleWorker))); err != nil {
		t.Fatal(err)
	}
	known, ip := testMAC(1), testIP(1)
	bound, err := db.Bind(ctx, LeaseRequest{MAC: known, IP: ip, Site: "lab", Hostname: "n1"})
	if err != nil {
		t.Fatal(err)
	}

	if err := db.Decline(ctx, known, ip, time.Hour); !errors.Is(err, ErrConflict) {
		t.Fatalf("decline of a reservation: %v, want ErrConflict", err)
	}
	got, err := db.LeaseByIP(ctx, ip)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(bound, got, addrs()); diff != "" {
		t.Errorf("lease after the decline (-want +got):\n%s", diff)
	}
	clk.Advance(time.Minute)
	if _, err := db.Offer(ctx, LeaseRequest{MAC: known, IP: ip, Site: "lab", Hostname: "n1"}); err != nil {
		t.Errorf("offer after the decline: %v", err)
	}
	if _, err := db.Bind(ctx, LeaseRequest{MAC: known, IP: ip, Site: "lab", Hostname: "n1"}); err != nil {
		t.Errorf("bind after the decline: %v", err)
	}

	// A discovered machine's dynamic address is held as before.
	stranger, dyn := testMAC(9), testIP(50)
	if _, err := db.Bind(ctx, LeaseRequest{MAC: stranger, IP: dyn, Site: "lab"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Observe(ctx, Observation{MAC: stranger, Site: "lab", IP: dyn}); err != nil {
		t.Fatal(err)
	}
	if err := db.Decline(ctx, stranger, dyn, time.Hour); err != nil {
		t.Fatalf("decline of a dynamic address: %v", err)
	}
	if l, err := db.LeaseByIP(ctx, dyn); err != nil || l.State != LeaseDeclined {
		t.Errorf("dynamic address after the decline: %+v, %v; want held", l, err)
	}
}
