package inventory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// stormEvent is one event of the storm fixture, at an offset from now.
type stormEvent struct {
	ago    time.Duration
	mac    int
	site   string
	kind   event.Kind
	detail string
}

// bootTo returns the steps of a boot of machine mac in site up to and
// including last, a second apart, the last one ago before now.
func bootTo(mac int, site string, last event.Kind, ago time.Duration) []stormEvent {
	kinds := []event.Kind{event.DHCPDiscover, event.DHCPOffer, event.DHCPRequest, event.DHCPAck, event.TFTP,
		event.IPXEChain, event.IPXEScript, event.Artifact, event.Ignition, event.Booted}
	n := slices.Index(kinds, last) + 1
	var out []stormEvent
	for i, k := range kinds[:n] {
		out = append(out, stormEvent{ago: ago + time.Duration(n-1-i)*time.Second, mac: mac, site: site, kind: k})
	}
	return out
}

// stormDB is an inventory with machines of site lab in every phase, and two
// machines of site other, its events stored in time order as a server
// stores them; now is 10:00:07.
func stormDB(t *testing.T) *DB {
	t.Helper()
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	var decls []sites.Machine
	for i := 1; i <= 12; i++ {
		decls = append(decls, decl(fmt.Sprint("n", i), i, sites.RoleWorker))
	}
	if err := db.DeclareMachines(ctx, release("c1", decls...)); err != nil {
		t.Fatal(err)
	}
	// 1 has not started.
	evs := slices.Concat(
		bootTo(2, "lab", event.DHCPOffer, 3*time.Second),
		bootTo(3, "lab", event.TFTP, 5*time.Second),
		bootTo(4, "lab", event.IPXEScript, 4*time.Second),
		bootTo(5, "lab", event.Artifact, 2*time.Second),
		bootTo(6, "lab", event.Ignition, time.Second),
		// 7 booted in the window's fourth bucket, then sent heartbeats.
		bootTo(7, "lab", event.Booted, 29*time.Minute+7*time.Second),
		[]stormEvent{{ago: 20 * time.Minute, mac: 7, kind: event.Heartbeat}, {ago: time.Minute, mac: 7, kind: event.Heartbeat}},
		// 8's config was refused.
		bootTo(8, "lab", event.Ignition, time.Minute),
		[]stormEvent{{ago: 30 * time.Second, mac: 8, kind: event.IgnitionDenied}},
		// 9 went silent mid-boot.
		bootTo(9, "lab", event.IPXEScript, DefaultBootGap+time.Minute),
		// 10 booted before the window; 11 and 12 in one bucket.
		bootTo(10, "lab", event.Booted, 40*time.Minute),
		bootTo(11, "lab", event.Booted, 10*time.Minute+6*time.Second),
		bootTo(12, "lab", event.Booted, 10*time.Minute-7*time.Second),
		// 20 is in no config and was told there is nothing to boot.
		bootTo(20, "other", event.IPXEScript, 3*time.Minute),
		// 21 booted in site other, in the window's last bucket.
		bootTo(21, "other", event.Booted, 5*time.Second),
	)
	for i := range evs {
		if evs[i].mac == 20 && evs[i].kind == event.IPXEScript {
			evs[i].detail = event.NothingToBoot
		}
		if evs[i].site == "" {
			evs[i].site = "lab"
		}
	}
	clk.Advance(7 * time.Second)
	now := clk.Now()
	slices.SortStableFunc(evs, func(a, b stormEvent) int { return int(b.ago - a.ago) })
	for _, e := range evs {
		ev := Event{At: now.Add(-e.ago), MAC: testMAC(e.mac), Site: e.site, Kind: e.kind, Detail: e.detail}
		if e.kind == event.Booted {
			ev.Version = "c1"
		}
		if _, err := db.RecordSync(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// 12's rebuild failed after it booted.
	if err := db.do(ctx, func(t *tx) error { return t.setMachineFailed(testMAC(12)) }); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestPhaseCounts(t *testing.T) {
	db := stormDB(t)
	tests := map[string]struct {
		site string
		want map[Phase]int
	}{
		"lab": {"lab", map[Phase]int{
			PhaseNotStarted: 1, PhaseDHCP: 1, PhaseFirmware: 1, PhaseScript: 1, PhaseDownload: 1,
			PhaseIgnition: 1, PhaseBooted: 3, PhaseStalled: 1, PhaseFailed: 2,
		}},
		"all sites": {"", map[Phase]int{
			PhaseNotStarted: 1, PhaseNothingToBoot: 1, PhaseDHCP: 1, PhaseFirmware: 1, PhaseScript: 1,
			PhaseDownload: 1, PhaseIgnition: 1, PhaseBooted: 4, PhaseStalled: 1, PhaseFailed: 2,
		}},
		"unknown site": {"nowhere", map[Phase]int{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := db.PhaseCounts(context.Background(), tc.site)
			if err != nil {
				t.Fatal(err)
			}
			want := map[Phase]int{}
			for _, p := range Phases() {
				want[p] = tc.want[p]
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("phase counts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPhaseOf(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		state State
		last  event.Kind
		ago   time.Duration
		want  Phase
	}{
		"known":                      {StateKnown, "", 0, PhaseNotStarted},
		"discovered":                 {StateDiscovered, "", 0, PhaseNotStarted},
		"nothing to boot":            {StateNothingToBoot, event.IPXEScript, 0, PhaseNothingToBoot},
		"provisioned, renewing":      {StateProvisioned, event.DHCPAck, 0, PhaseBooted},
		"rebuild failed":             {StateFailed, event.Rebuild, 0, PhaseFailed},
		"discover":                   {StateBooting, event.DHCPDiscover, time.Second, PhaseDHCP},
		"HTTP boot":                  {StateBooting, event.Firmware, time.Second, PhaseFirmware},
		"chain script":               {StateBooting, event.IPXEChain, time.Second, PhaseFirmware},
		"script":                     {StateBooting, event.IPXEScript, time.Second, PhaseScript},
		"artifact":                   {StateBooting, event.Artifact, time.Minute, PhaseDownload},
		"ignition":                   {StateBooting, event.Ignition, time.Minute, PhaseIgnition},
		"running OS did a discover":  {StateBooting, event.Heartbeat, time.Hour, PhaseBooted},
		"config refused":             {StateBooting, event.IgnitionDenied, time.Hour, PhaseFailed},
		"silent past the boot gap":   {StateBooting, event.Artifact, DefaultBootGap + time.Second, PhaseStalled},
		"booting without a step":     {StateBooting, "", 0, PhaseStalled},
		"a state added later":        {State("resting"), event.Ignition, time.Second, PhaseIgnition},
		"silent just within the gap": {StateBooting, event.DHCPAck, DefaultBootGap, PhaseDHCP},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := phaseOf(tc.state, tc.last, now.Add(-tc.ago), now); got != tc.want {
				t.Errorf("phaseOf(%s, %s, %v ago) = %s, want %s", tc.state, tc.last, tc.ago, got, tc.want)
			}
		})
	}
}

func TestBootedSeries(t *testing.T) {
	db := stormDB(t)
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 9, 30, 15, 0, time.UTC) // 10:00:07 - 30m, in 15 s buckets
	tests := map[string]struct {
		site   string
		window time.Duration
		want   map[int]int // bucket -> count; the rest 0
		start  time.Time
		step   time.Duration
		n      int
	}{
		// 7 at 09:31:00, 11 at 09:50:01, 12 at 09:50:14, 21 at 10:00:02;
		// 10 at 09:20:07 is before the window.
		"lab": {"lab", 30 * time.Minute, map[int]int{3: 1, 79: 2}, start, 15 * time.Second, 120},
		"all": {"", 30 * time.Minute, map[int]int{3: 1, 79: 2, 119: 1}, start, 15 * time.Second, 120},
		"an hour": {"", time.Hour, map[int]int{39: 1, 61: 1, 99: 2, 119: 1},
			time.Date(2026, 3, 1, 9, 0, 30, 0, time.UTC), 30 * time.Second, 120},
		"other site, a minute": {"other", time.Minute, map[int]int{54: 1},
			time.Date(2026, 3, 1, 9, 59, 8, 0, time.UTC), time.Second, 60},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := db.BootedSeries(ctx, tc.site, tc.window)
			if err != nil {
				t.Fatal(err)
			}
			want := BootedSeries{Start: tc.start, Step: tc.step, Counts: make([]int, tc.n)}
			for b, n := range tc.want {
				want.Counts[b] = n
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("series (-want +got):\n%s", diff)
			}
		})
	}

	empty := openTest(t, newClock())
	got, err := empty.BootedSeries(ctx, "", 30*time.Minute)
	if err != nil || len(got.Counts) != 120 || slices.Max(got.Counts) != 0 {
		t.Errorf("series of an empty log: %+v, %v; want 120 zeros", got, err)
	}
}

func TestSeriesBuckets(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 7, 0, time.UTC)
	tests := map[time.Duration]struct {
		step time.Duration
		n    int
	}{
		0:                    {time.Second, 1},
		90 * time.Second:     {time.Second, 90},
		2 * time.Minute:      {time.Second, 120},
		121 * time.Second:    {2 * time.Second, 61},
		30 * time.Minute:     {15 * time.Second, 120},
		time.Hour:            {30 * time.Second, 120},
		24 * time.Hour:       {15 * time.Minute, 96},
		7 * 24 * time.Hour:   {2 * time.Hour, 84},
		365 * 24 * time.Hour: {24 * time.Hour, MaxSeriesPoints},
	}
	for window, tc := range tests {
		start, step, n := seriesBuckets(now, window)
		end := start.Add(time.Duration(n) * step)
		if step != tc.step || n != tc.n || start.Truncate(step) != start || !now.Before(end) || end.Sub(now) > step {
			t.Errorf("window %v: %v from %v, %d buckets, want %v, %d, the last holding now", window, step, start, n, tc.step, tc.n)
		}
	}
}

// The storm view's queries must walk indexes: the machines by state, a
// booting machine's events by MAC, the log by ID. A scan of boot_events
// would read millions of rows every refresh.
func TestStormQueryPlans(t *testing.T) {
	db := stormDB(t)
	for name, q := range map[string]string{
		"phases": phaseQuery(false), "phases of a site": phaseQuery(true),
		"series": seriesQuery(false), "series of a site": seriesQuery(true),
	} {
		args := []any{"lab"}
		if strings.HasPrefix(name, "series") {
			args = []any{1, 2, "a", "b", "c", "lab"}
			if name == "series" {
				args = args[:5]
			}
		} else if name == "phases" {
			args = nil
		}
		rows, err := db.read.Query("EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		t.Logf("%s:\n%s", name, text)
		for _, line := range plan {
			if strings.HasPrefix(line, "SCAN boot_events") || strings.HasPrefix(line, "SCAN e") {
				t.Errorf("%s query scans the event log:\n%s", name, text)
			}
		}
		if strings.HasPrefix(name, "phases") && !strings.Contains(text, "boot_events_by_mac") {
			t.Errorf("%s query does not use boot_events_by_mac:\n%s", name, text)
		}
	}
}
