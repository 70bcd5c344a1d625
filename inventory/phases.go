package inventory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/undercloud/undercloud/event"
)

// Phase is how far a machine has come in its boot right now, as the storm
// view counts machines during a bring-up. It refines State: a booting
// machine's phase is told by its latest boot step.
type Phase string

// The phases, in boot order (Phases).
const (
	// PhaseNotStarted: declared or discovered, no boot step seen (states
	// known and discovered).
	PhaseNotStarted Phase = "not-started"
	// PhaseNothingToBoot: in no site config and told there is nothing to
	// boot (state nothing-to-boot).
	PhaseNothingToBoot Phase = "nothing-to-boot"
	// PhaseDHCP: its latest step is a DHCP exchange.
	PhaseDHCP Phase = "dhcp"
	// PhaseFirmware: fetching iPXE: a TFTP or HTTP transfer of an iPXE
	// binary, or the fixed chain script.
	PhaseFirmware Phase = "firmware"
	// PhaseScript: its own iPXE script was served.
	PhaseScript Phase = "ipxe-script"
	// PhaseDownload: downloading its kernel, initrd or rootfs (an
	// artifact was served).
	PhaseDownload Phase = "download"
	// PhaseIgnition: its Ignition config was served; its booted report is
	// awaited.
	PhaseIgnition Phase = "ignition"
	// PhaseBooted: it reported booted (state provisioned), or its OS sent
	// a heartbeat since its latest boot step.
	PhaseBooted Phase = "booted"
	// PhaseStalled: booting, but no boot step for more than
	// DefaultBootGap: a boot GroupBoots would call over.
	PhaseStalled Phase = "stalled"
	// PhaseFailed: its rebuild failed (state failed), or its Ignition
	// config was refused after its latest boot step.
	PhaseFailed Phase = "failed"
)

// Phases returns the phases in boot order, for the storm view's bar row.
func Phases() []Phase {
	return []Phase{PhaseNotStarted, PhaseNothingToBoot, PhaseDHCP, PhaseFirmware, PhaseScript, PhaseDownload,
		PhaseIgnition, PhaseBooted, PhaseStalled, PhaseFailed}
}

// String returns the phase's name.
func (p Phase) String() string { return string(p) }

// phaseOfKind is the phase a booting machine is in when its latest event
// among these kinds is of that kind. Events of other kinds (a denied
// script or callback, a release, a rebuild's transition) tell nothing of
// how far the boot came and are looked past.
func phaseOfKind(k event.Kind) (Phase, bool) {
	switch k {
	case event.DHCPDiscover, event.DHCPOffer, event.DHCPRequest, event.DHCPAck:
		return PhaseDHCP, true
	case event.TFTP, event.Firmware, event.IPXEChain:
		return PhaseFirmware, true
	case event.IPXEScript:
		return PhaseScript, true
	case event.Artifact:
		return PhaseDownload, true
	case event.Ignition:
		return PhaseIgnition, true
	case event.Booted, event.Heartbeat:
		return PhaseBooted, true
	case event.IgnitionDenied:
		return PhaseFailed, true
	}
	return "", false
}

// phaseKinds are the kinds phaseOfKind knows, sorted, so the query text
// (and its prepared statement) is the same on every call.
func phaseKinds() []string {
	kinds := []event.Kind{event.DHCPDiscover, event.DHCPOffer, event.DHCPRequest, event.DHCPAck,
		event.TFTP, event.Firmware, event.IPXEChain, event.IPXEScript, event.Artifact, event.Ignition,
		event.Booted, event.Heartbeat, event.IgnitionDenied}
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = string(k)
	}
	slices.Sort(out)
	return out
}

// settledPhase is the phase of a machine in state st when the state alone
// tells it; false for booting, and for any state added later, whose
// machines are placed by their latest boot step.
func settledPhase(st State) (Phase, bool) {
	switch st {
	case StateKnown, StateDiscovered:
		return PhaseNotStarted, true
	case StateNothingToBoot:
		return PhaseNothingToBoot, true
	case StateProvisioned:
		return PhaseBooted, true
	case StateFailed:
		return PhaseFailed, true
	}
	return "", false
}

// phaseOf is the phase of a machine in state st whose latest event among
// the kinds phaseOfKind knows is of kind last at lastAt (last is empty
// when it has none), at now.
func phaseOf(st State, last event.Kind, lastAt, now time.Time) Phase {
	if p, ok := settledPhase(st); ok {
		return p
	}
	p, ok := phaseOfKind(last)
	switch {
	case !ok:
		// Booting with no step on record (pruned, or a state set
		// without one): nothing shows it going anywhere.
		return PhaseStalled
	case p == PhaseBooted || p == PhaseFailed:
		return p
	case now.Sub(lastAt) > DefaultBootGap:
		return PhaseStalled
	}
	return p
}

// phaseQuery counts the machines of a site (of all if !bySite) by state
// and, for a machine not in a settled state, by its latest event among
// phaseKinds, as "at kind" (at is fixed width). The machines are read from
// machines_by_state (site, state, and the MAC key: a covering index); each
// machine not settled costs one walk back through boot_events_by_mac
// (mac, id) from its newest event, which stops at its first event of a
// phase kind -- almost always the newest. Settled machines cost nothing
// more: CASE evaluates the subquery only for the others.
func phaseQuery(bySite bool) string {
	var settled []string
	for _, st := range States() {
		if _, ok := settledPhase(st); ok {
			settled = append(settled, "'"+string(st)+"'")
		}
	}
	where := ""
	if bySite {
		where = "WHERE m.site = ? "
	}
	return `SELECT m.state, CASE WHEN m.state NOT IN (` + strings.Join(settled, ", ") + `) THEN
	(SELECT e.at || ' ' || e.kind FROM boot_events e
	 WHERE e.mac = m.mac AND e.kind IN ('` + strings.Join(phaseKinds(), "', '") + `')
	 ORDER BY e.id DESC LIMIT 1) END AS last, count(*)
FROM machines m ` + where + `GROUP BY 1, 2`
}

// PhaseCounts returns how many machines of a site (of all sites if site is
// empty) are in each phase now, every phase of Phases present (zero when
// none is in it). It is one read: thousands of machines cost a few
// milliseconds, since only the booting ones look at their events.
func (db *DB) PhaseCounts(ctx context.Context, site string) (map[Phase]int, error) {
	q, args := phaseQuery(false), []any(nil)
	if site != "" {
		q, args = phaseQuery(true), []any{site}
	}
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("phase counts of site %q: %w", site, err)
	}
	defer rows.Close()
	now := db.now()
	counts := map[Phase]int{}
	for _, p := range Phases() {
		counts[p] = 0
	}
	for rows.Next() {
		var state string
		var last *string
		var n int
		if err := rows.Scan(&state, &last, &n); err != nil {
			return nil, fmt.Errorf("phase counts of site %q: %w", site, err)
		}
		var kind event.Kind
		var at time.Time
		if last != nil {
			stamp, k, _ := strings.Cut(*last, " ")
			if at, err = time.Parse(timeFormat, stamp); err != nil {
				return nil, fmt.Errorf("phase counts of site %q: stored time %q: %w", site, stamp, err)
			}
			kind = event.Kind(k)
		}
		counts[phaseOf(State(state), kind, at, now)] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("phase counts of site %q: %w", site, err)
	}
	return counts, nil
}

// BootedSeries counts booted reports per time bucket over a window ending
// now: the storm view's chart of a bring-up.
type BootedSeries struct {
	Start  time.Time     // the first bucket's start
	Step   time.Duration // each bucket's width
	Counts []int         // booted reports per bucket, oldest first; the last bucket holds now
}

// MaxSeriesPoints bounds the buckets of a BootedSeries.
const MaxSeriesPoints = 120

// seriesBuckets returns the buckets of a series over window ending at now:
// the narrowest round width that covers the window in at most
// MaxSeriesPoints buckets, aligned to multiples of the width (so a series
// asked again a moment later has the same buckets), the last holding now.
func seriesBuckets(now time.Time, window time.Duration) (start time.Time, step time.Duration, n int) {
	if window < time.Second {
		window = time.Second
	}
	// Round widths, so buckets start on the minute, the quarter hour, the
	// hour.
	steps := [...]time.Duration{
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
	}
	step = steps[len(steps)-1]
	for _, s := range steps {
		if (window+s-1)/s <= MaxSeriesPoints {
			step = s
			break
		}
	}
	n = int(min((window+step-1)/step, MaxSeriesPoints))
	return now.Truncate(step).Add(-time.Duration(n-1) * step), step, n
}

// storedOutOfOrder is how far before the event stored before it an event's
// time may be: events are stored about in time order (their time is when
// they happened, stored within milliseconds; a booted report's is when its
// request came), so searching the log by ID for a time this much earlier
// finds every event from that time on.
const storedOutOfOrder = time.Minute

// seriesQuery counts the booted reports of a site (of all sites if !bySite)
// per bucket: ?1 the first bucket's start (Unix seconds), ?2 the bucket
// width (seconds), ?3 and ?4 the window's start and end (stored time),
// ?5 the time to search the log from, ?6 the site.
//
// boot_events has no index on time or kind, but its IDs grow with time, so
// the first event of the window is found by a binary search on the ID (the
// primary key): about 2·log2(events) point reads. From there the log is
// read in ID order to its end, keeping booted reports: the cost is the
// events of the window (all kinds), not of the log. An index
// (at) WHERE kind = 'booted' would make it a walk over the booted reports
// alone.
func seriesQuery(bySite bool) string {
	site := ""
	if bySite {
		site = " AND site = ?6"
	}
	return `WITH RECURSIVE search(lo, hi) AS (
	SELECT (SELECT min(id) FROM boot_events), (SELECT max(id) FROM boot_events) + 1
	UNION ALL
	SELECT
		CASE WHEN coalesce((SELECT at FROM boot_events WHERE id >= (lo + hi) / 2 ORDER BY id LIMIT 1) >= ?5, 1)
			THEN lo ELSE (lo + hi) / 2 + 1 END,
		CASE WHEN coalesce((SELECT at FROM boot_events WHERE id >= (lo + hi) / 2 ORDER BY id LIMIT 1) >= ?5, 1)
			THEN (lo + hi) / 2 ELSE hi END
	FROM search WHERE lo < hi
)
SELECT (CAST(strftime('%s', at) AS INTEGER) - ?1) / ?2 AS bucket, count(*)
FROM boot_events
WHERE id >= (SELECT lo FROM search WHERE lo >= hi) AND kind = '` + string(event.Booted) + `'
	AND at >= ?3 AND at < ?4` + site + `
GROUP BY bucket`
}

// BootedSeries returns the booted reports of a site (of all sites if site
// is empty) per bucket over the window ending now (see seriesBuckets; at
// most MaxSeriesPoints buckets). It is one read, costing the events of the
// window rather than of the whole log (see seriesQuery).
func (db *DB) BootedSeries(ctx context.Context, site string, window time.Duration) (BootedSeries, error) {
	start, step, n := seriesBuckets(db.now(), window)
	end := start.Add(time.Duration(n) * step)
	args := []any{start.Unix(), int64(step / time.Second), start.Format(timeFormat), end.Format(timeFormat),
		start.Add(-storedOutOfOrder).Format(timeFormat)}
	q := seriesQuery(false)
	if site != "" {
		q, args = seriesQuery(true), append(args, site)
	}
	s := BootedSeries{Start: start, Step: step, Counts: make([]int, n)}
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return s, fmt.Errorf("booted series of site %q: %w", site, err)
	}
	defer rows.Close()
	for rows.Next() {
		var bucket, count int
		if err := rows.Scan(&bucket, &count); err != nil {
			return s, fmt.Errorf("booted series of site %q: %w", site, err)
		}
		if bucket >= 0 && bucket < n {
			s.Counts[bucket] += count
		}
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("booted series of site %q: %w", site, err)
	}
	return s, nil
}
