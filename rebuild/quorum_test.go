package rebuild

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

func TestQuorumBlock(t *testing.T) {
	m1, m2, m3 := macOf("m1"), macOf("m2"), macOf("m3")
	tests := map[string]struct {
		masters int
		down    map[sites.MAC]string
		want    string
	}{
		"one master: its only master may go": {masters: 1},
		"one master, down already":           {masters: 1, down: map[sites.MAC]string{m1: "m1 failed"}},
		"two masters: never": {masters: 2,
			want: "rebuilding it would leave 1 of 2 masters up (etcd needs 2)"},
		"three, none down":                 {masters: 3},
		"three, the candidate down only":   {masters: 3, down: map[sites.MAC]string{m1: "m1 booting"}},
		"three, another rebuilding":        {masters: 3, down: map[sites.MAC]string{m2: "m2 rebuilding (rebuild 7, booting)"}, want: "rebuilding it would leave 1 of 3 masters up (etcd needs 2): m2 rebuilding (rebuild 7, booting)"},
		"three, both others down, sorted":  {masters: 3, down: map[sites.MAC]string{m3: "m3 failed", m2: "m2 booting"}, want: "rebuilding it would leave 0 of 3 masters up (etcd needs 2): m2 booting, m3 failed"},
		"three, the candidate and another": {masters: 3, down: map[sites.MAC]string{m1: "m1 failed", m2: "m2 failed"}, want: "rebuilding it would leave 1 of 3 masters up (etcd needs 2): m2 failed"},
		"five, one other down: two may be": {masters: 5, down: map[sites.MAC]string{m2: "m2 failed"}},
		"five, two others down":            {masters: 5, down: map[sites.MAC]string{m2: "m2 failed", m3: "m3 failed"}, want: "rebuilding it would leave 2 of 5 masters up (etcd needs 3): m2 failed, m3 failed"},
		"four, none down: one may be":      {masters: 4},
		"four, one other down":             {masters: 4, down: map[sites.MAC]string{m2: "m2 failed"}, want: "rebuilding it would leave 2 of 4 masters up (etcd needs 3): m2 failed"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := quorumBlock(tc.masters, tc.down, m1); got != tc.want {
				t.Errorf("quorumBlock(%d, %v, m1)\n got %q\nwant %q", tc.masters, tc.down, got, tc.want)
			}
		})
	}
	for masters, want := range map[int]bool{1: false, 2: true, 3: false, 4: false, 5: false} {
		if got := quorumNever(masters); got != want {
			t.Errorf("quorumNever(%d) = %v, want %v", masters, got, want)
		}
	}
}

func TestOneOffDown(t *testing.T) {
	masters := []sites.Machine{machine("m1", sites.RoleMaster), machine("m2", sites.RoleMaster), machine("m3", sites.RoleMaster)}
	up := func(name string) inventory.Machine {
		return inventory.Machine{MAC: macOf(name), Name: name, State: inventory.StateProvisioned,
			CurrentVersion: oldCommit, AssignedVersion: oldCommit}
	}
	with := func(m inventory.Machine, f func(*inventory.Machine)) inventory.Machine { f(&m); return m }
	tests := map[string]struct {
		ms       []inventory.Machine
		inflight []inventory.Rebuild
		want     map[sites.MAC]string
	}{
		"all up": {ms: []inventory.Machine{up("m1"), up("m2"), up("m3")}, want: map[sites.MAC]string{}},
		"assigned not set yet: not a mismatch": {
			ms:   []inventory.Machine{up("m1"), with(up("m2"), func(m *inventory.Machine) { m.AssignedVersion = "" }), up("m3")},
			want: map[sites.MAC]string{},
		},
		"every way down": {
			ms: []inventory.Machine{
				up("m1"),
				with(up("m2"), func(m *inventory.Machine) { m.AssignedVersion = newCommit }),
				with(up("m3"), func(m *inventory.Machine) { m.State = inventory.StateFailed }),
			},
			want: map[sites.MAC]string{
				macOf("m2"): "m2 runs 111111111111, not its assigned 222222222222",
				macOf("m3"): "m3 failed",
			},
		},
		"a rebuild in flight wins over the state": {
			ms:       []inventory.Machine{up("m1"), with(up("m2"), func(m *inventory.Machine) { m.State = inventory.StateBooting }), up("m3")},
			inflight: []inventory.Rebuild{{ID: 7, MAC: macOf("m2"), State: inventory.RebuildBooting}},
			want:     map[sites.MAC]string{macOf("m2"): "m2 rebuilding (rebuild 7, booting)"},
		},
		"never booted, not in the inventory": {
			ms:   []inventory.Machine{up("m1"), with(up("m2"), func(m *inventory.Machine) { m.State = inventory.StateKnown })},
			want: map[sites.MAC]string{macOf("m2"): "m2 never booted", macOf("m3"): "m3 not in the inventory"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			byMAC := map[sites.MAC]inventory.Machine{}
			for _, m := range tc.ms {
				byMAC[m.MAC] = m
			}
			if diff := cmp.Diff(tc.want, oneOffDown(masters, byMAC, tc.inflight)); diff != "" {
				t.Errorf("down (-want +got):\n%s", diff)
			}
		})
	}
}

// threeMasters is labRelease with lab-m2 and lab-m3 masters too, every
// machine assigned the version it booted (oldCommit).
func threeMasters(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, labRelease(machine("lab-m2", sites.RoleMaster), machine("lab-m3", sites.RoleMaster)))
	for _, m := range f.sites.Release("lab").Site.Machines {
		if _, err := f.db.AssignVersion(f.ctx, m.MAC, oldCommit, ""); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestOneOffRebuildQuorum(t *testing.T) {
	f := threeMasters(t)
	var logged bytes.Buffer
	f.e.Log = slog.New(slog.NewTextHandler(&logged, nil))
	req := func(name string, force bool) (Requested, error) {
		return f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: name, Actor: "alice", Force: force})
	}

	m1, err := req("lab-m1", false)
	if err != nil {
		t.Fatalf("rebuild of lab-m1 with every master up: %v", err)
	}
	if m1.Overrode != "" {
		t.Errorf("rebuild of lab-m1 overrode %q: nothing to override", m1.Overrode)
	}
	f.settle() // lab-m1 power-cycled: booting

	_, err = req("lab-m2", false)
	want := "lab/lab-m2 is a master: rebuilding it would leave 1 of 3 masters up (etcd needs 2): " +
		fmt.Sprintf("lab-m1 rebuilding (rebuild %d, booting); use --force to override", m1.Rebuild.ID)
	if !errors.Is(err, ErrConflict) || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("rebuild of lab-m2 while lab-m1 rebuilds:\n got %v\nwant ErrConflict: %s", err, want)
	}
	if rs, _ := f.db.Rebuilds(f.ctx, inventory.RebuildFilter{MAC: macOf("lab-m2")}); len(rs) != 0 {
		t.Errorf("refused, yet stored: %v", rs)
	}

	w1, err := req("lab-w1", false)
	if err != nil || w1.Overrode != "" {
		t.Errorf("a worker is never held to the master rule: %+v, %v", w1, err)
	}

	m2, err := req("lab-m2", true)
	if err != nil {
		t.Fatalf("forced rebuild of lab-m2: %v", err)
	}
	if m2.Rebuild.State != inventory.RebuildRequested || m2.Rebuild.RequestedBy != "alice" {
		t.Errorf("forced rebuild: %+v", m2.Rebuild)
	}
	if !strings.Contains(m2.Overrode, "lab-m1 rebuilding") {
		t.Errorf("forced rebuild overrode %q, want it to name lab-m1", m2.Overrode)
	}
	if !strings.Contains(logged.String(), `msg="rebuild forced past the master quorum rule"`) ||
		!strings.Contains(logged.String(), "lab-m1 rebuilding") {
		t.Errorf("log lacks the forced rebuild with the masters down:\n%s", logged.String())
	}
}

func TestOneOffRebuildQuorumByState(t *testing.T) {
	f := threeMasters(t)
	if _, err := f.db.AssignVersion(f.ctx, macOf("lab-m3"), newCommit, oldCommit); err != nil {
		t.Fatal(err)
	}
	_, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-m1", Actor: "alice"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "lab-m3 runs 111111111111, not its assigned 222222222222") {
		t.Errorf("lab-m3 not on its assigned version: got %v, want ErrConflict naming it", err)
	}
	// lab-m3 is what is down: rebuilding it is allowed.
	if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-m3", Actor: "alice"}); err != nil {
		t.Errorf("rebuild of the master down: %v", err)
	}

	g := threeMasters(t)
	// lab-m2 powers on again: its firmware's DISCOVER, which carries no
	// boot id, a second after its last boot.
	g.clk.Advance(time.Second)
	if _, err := g.db.RecordSync(g.ctx, inventory.Event{MAC: macOf("lab-m2"), Site: "lab", Kind: event.DHCPDiscover}); err != nil {
		t.Fatal(err)
	}
	_, err = g.e.Rebuild(g.ctx, Request{Site: "lab", Machine: "lab-m1", Actor: "alice"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "lab-m2 booting") {
		t.Errorf("lab-m2 booting: got %v, want ErrConflict naming it", err)
	}
}

func TestOneOffRebuildSingleMaster(t *testing.T) {
	f := newFixture(t, labRelease())
	f.event("lab-m1", event.DHCPDiscover, "") // down itself: no matter
	r, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-m1", Actor: "alice"})
	if err != nil || r.Overrode != "" {
		t.Errorf("a site's only master may be rebuilt: %+v, %v", r, err)
	}
}
