package inventory

import (
	"context"
	"errors"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// release builds a release of site lab at commit with the given machines.
func release(commit string, ms ...sites.Machine) *sites.Release {
	return &sites.Release{
		Site:    &sites.Site{Name: "lab", Image: "fcos-40", Machines: ms},
		Image:   &sites.Image{Name: "fcos-40"},
		Version: sites.Version{Commit: commit, Tags: []string{"v-" + commit}},
	}
}

func decl(name string, mac int, role sites.Role) sites.Machine {
	return sites.Machine{Name: name, MAC: testMAC(mac), Role: role, IP: testIP(mac)}
}

func TestDeclareMachines(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	t0 := clk.Now()

	if err := db.DeclareMachines(ctx, release("c1",
		decl("n1", 1, sites.RoleMaster), decl("n2", 2, sites.RoleWorker), decl("n3", 3, sites.RoleWorker))); err != nil {
		t.Fatal(err)
	}
	// Machine 1 boots c1; machine 2 is seen; machine 9 is unknown and boots.
	for _, ev := range []Event{
		{MAC: testMAC(1), Kind: event.DHCPAck, IP: testIP(1)},
		{MAC: testMAC(1), Kind: event.Booted, Version: "c1"},
		{MAC: testMAC(9), Site: "lab", Kind: event.DHCPDiscover},
	} {
		if _, err := db.RecordSync(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Observe(ctx, Observation{MAC: testMAC(2), Site: "other", Arch: "7", UUID: "u-2", IP: testIP(2)}); err != nil {
		t.Fatal(err)
	}

	// c2 swaps the names of 2 and 3, declares the unknown 9.
	clk.Advance(time.Minute)
	if err := db.DeclareMachines(ctx, release("c2",
		decl("n1", 1, sites.RoleMaster), decl("n3", 2, sites.RoleWorker), decl("n2", 3, sites.RoleWorker),
		decl("n9", 9, sites.RoleWorker))); err != nil {
		t.Fatal(err)
	}
	want := map[string]Machine{
		"n1": {MAC: testMAC(1), Site: "lab", Name: "n1", Role: sites.RoleMaster, State: StateProvisioned, Image: "fcos-40",
			CurrentVersion: "c1", DesiredVersion: "c2", AssignedVersion: "c1", LastIP: testIP(1), FirstSeen: t0, LastSeen: t0},
		"n3": {MAC: testMAC(2), Site: "lab", Name: "n3", Role: sites.RoleWorker, State: StateKnown, Image: "fcos-40",
			DesiredVersion: "c2", LastIP: testIP(2), UUID: "u-2", Arch: "7", FirstSeen: t0, LastSeen: t0},
		"n2": {MAC: testMAC(3), Site: "lab", Name: "n2", Role: sites.RoleWorker, State: StateKnown, Image: "fcos-40",
			DesiredVersion: "c2"},
		"n9": {MAC: testMAC(9), Site: "lab", Name: "n9", Role: sites.RoleWorker, State: StateBooting, Image: "fcos-40",
			DesiredVersion: "c2", FirstSeen: t0, LastSeen: t0},
	}
	for name, w := range want {
		got, err := db.MachineByName(ctx, "lab", name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(w, got, addrs()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}

	// c3 drops machine 3 (named n2): it stays, undeclared.
	if err := db.DeclareMachines(ctx, release("c3",
		decl("n1", 1, sites.RoleMaster), decl("n3", 2, sites.RoleWorker), decl("n9", 9, sites.RoleWorker))); err != nil {
		t.Fatal(err)
	}
	if _, err := db.MachineByName(ctx, "lab", "n2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("undeclared machine found by name: %v", err)
	}
	m3, err := db.Machine(ctx, testMAC(3))
	if err != nil {
		t.Fatal(err)
	}
	if !m3.Discovered || m3.State != StateDiscovered || m3.Role != "" || m3.DesiredVersion != "" || m3.Outdated() {
		t.Errorf("undeclared machine: %+v", m3)
	}
}

func TestObserve(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	t0 := clk.Now()
	mac := testMAC(5)
	if err := db.Observe(ctx, Observation{MAC: mac, Site: "lab", Arch: "0", VendorClass: "PXEClient:Arch:00000:UNDI:002001", UUID: "u"}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	// Later sightings fill in what they know and keep the rest.
	if err := db.Observe(ctx, Observation{MAC: mac, Site: "lab", Serial: "s-5", IP: netip.MustParseAddr("10.0.0.5")}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Machine(ctx, mac)
	if err != nil {
		t.Fatal(err)
	}
	want := Machine{MAC: mac, Site: "lab", State: StateDiscovered, UUID: "u", Serial: "s-5", Arch: "0",
		VendorClass: "PXEClient:Arch:00000:UNDI:002001", LastIP: netip.MustParseAddr("10.0.0.5"),
		FirstSeen: t0, LastSeen: t0.Add(time.Minute), Discovered: true}
	if diff := cmp.Diff(want, got, addrs()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := db.Machine(ctx, testMAC(6)); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown MAC: %v, want ErrNotFound", err)
	}
}

func TestMachineFilters(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newClock())
	if err := db.DeclareMachines(ctx, release("c2",
		decl("m1", 1, sites.RoleMaster), decl("m2", 2, sites.RoleMaster), decl("w1", 3, sites.RoleWorker),
		decl("w2", 4, sites.RoleWorker))); err != nil {
		t.Fatal(err)
	}
	other := release("c7", decl("x1", 10, sites.RoleWorker))
	other.Site.Name = "other"
	if err := db.DeclareMachines(ctx, other); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []Event{
		{MAC: testMAC(1), Kind: event.Booted, Version: "c2"},                               // up to date
		{MAC: testMAC(2), Kind: event.Booted, Version: "c1"},                               // outdated
		{MAC: testMAC(3), Kind: event.Booted, Version: "c1"},                               // outdated
		{MAC: testMAC(3), Kind: event.DHCPDiscover, At: newClock().Now().Add(time.Second)}, // and rebooting since
		{MAC: testMAC(10), Kind: event.Booted, Version: "c7"},
		{MAC: testMAC(20), Site: "lab", Kind: event.DHCPDiscover}, // unknown
	} {
		if err := db.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		f    MachineFilter
		want []int
	}{
		"all":                  {MachineFilter{}, []int{1, 2, 3, 4, 20, 10}},
		"site, unnamed first":  {MachineFilter{Site: "lab"}, []int{20, 1, 2, 3, 4}},
		"role":                 {MachineFilter{Site: "lab", Role: sites.RoleWorker}, []int{3, 4}},
		"state":                {MachineFilter{State: StateBooting}, []int{3, 20}},
		"version":              {MachineFilter{Version: "c1"}, []int{2, 3}},
		"outdated":             {MachineFilter{Outdated: true}, []int{2, 3, 4}},
		"outdated masters":     {MachineFilter{Role: sites.RoleMaster, Outdated: true}, []int{2}},
		"discovered":           {MachineFilter{Discovered: true}, []int{20}},
		"nothing":              {MachineFilter{Site: "nowhere"}, nil},
		"provisioned of other": {MachineFilter{Site: "other", State: StateProvisioned}, []int{10}},
	} {
		t.Run(name, func(t *testing.T) {
			ms, err := db.Machines(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, m := range ms {
				got = append(got, string(m.MAC))
				if m.Outdated() != (m.DesiredVersion != "" && m.CurrentVersion != m.DesiredVersion && !m.Discovered) {
					t.Errorf("%s: Outdated() disagrees with its fields", m.MAC)
				}
			}
			for _, i := range tc.want {
				want = append(want, string(testMAC(i)))
			}
			if tc.f.Site == "" {
				sort.Strings(got) // across sites the order is by site first
				sort.Strings(want)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%+v (-want +got):\n%s", tc.f, diff)
			}
		})
	}
}

// A first boot's assignment is queued (AssignFirstVersion) and commits once
// flushed, and only where none was made; a booted report assigns the version
// it booted only to a machine with none (its queued assignment lost in a
// crash), never over an assignment such as a rebuild's target.
func TestFirstAssignment(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	if err := db.DeclareMachines(ctx, release("c1",
		decl("n1", 1, sites.RoleWorker), decl("n2", 2, sites.RoleWorker), decl("n3", 3, sites.RoleWorker))); err != nil {
		t.Fatal(err)
	}
	assigned := func(mac int) string {
		t.Helper()
		if err := db.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		m, err := db.Machine(ctx, testMAC(mac))
		if err != nil {
			t.Fatal(err)
		}
		return m.AssignedVersion
	}
	// n1: first boot, queued twice (an iPXE retry racing a version change).
	for _, v := range []string{"c1", "c2"} {
		if err := db.AssignFirstVersion(ctx, testMAC(1), v); err != nil {
			t.Fatal(err)
		}
	}
	if got := assigned(1); got != "c1" {
		t.Errorf("n1 assigned %q after two first assignments, want the first, c1", got)
	}
	// n2: its assignment lost; it booted c1.
	if _, err := db.RecordSync(ctx, Event{MAC: testMAC(2), Kind: event.Booted, Version: "c1"}); err != nil {
		t.Fatal(err)
	}
	if got := assigned(2); got != "c1" {
		t.Errorf("n2 booted c1 unassigned: assigned %q, want c1", got)
	}
	// n3: a rebuild assigned c2; it still booted c1 (the rebuild failed).
	if _, err := db.AssignVersion(ctx, testMAC(3), "c2", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordSync(ctx, Event{MAC: testMAC(3), Kind: event.Booted, Version: "c1"}); err != nil {
		t.Fatal(err)
	}
	if got := assigned(3); got != "c2" {
		t.Errorf("n3 assigned c2 booted c1: assigned %q, want c2 kept", got)
	}
}
