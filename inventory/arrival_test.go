package inventory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// bootEnd is how a generated boot ends.
type bootEnd int

const (
	endBooted        bootEnd = iota // reports booted, then renews its lease
	endCut                          // stops somewhere before booted (a failed or running boot)
	endNothingToBoot                // its script exits
)

// machinePlan is the events of several boots of one machine and the state
// and current version they must leave, whatever their order of arrival.
type machinePlan struct {
	mac         sites.MAC
	events      []Event
	want        State
	wantVersion string
}

// planBoots returns the events of n boots of mac, ten minutes apart from
// t0, as the DHCP, TFTP and HTTP paths stamp them: the steps before /ipxe
// without a boot id. Every boot but the last may end in any way; the last
// ends in last.
func planBoots(rng *rand.Rand, mac sites.MAC, t0 time.Time, n int, last bootEnd) machinePlan {
	p := machinePlan{mac: mac}
	for k := range n {
		end := bootEnd(rng.IntN(3))
		if k == n-1 {
			end = last
		}
		start := t0.Add(time.Duration(k) * 10 * time.Minute)
		boot, version := fmt.Sprintf("%s/%d", mac, k), fmt.Sprintf("c%d", k)
		ev := func(kind event.Kind, after time.Duration, id string) Event {
			e := Event{At: start.Add(after), MAC: mac, Site: "lab", BootID: id, Kind: kind, IP: testIP(1)}
			if kind == event.IPXEScript || kind == event.Booted || id != "" {
				e.Version = version
			}
			return e
		}
		ms := time.Millisecond
		evs := []Event{
			ev(event.DHCPDiscover, 0, ""), ev(event.DHCPOffer, 100*ms, ""), ev(event.DHCPRequest, 200*ms, ""),
			ev(event.DHCPAck, 300*ms, ""), ev(event.TFTP, time.Second, ""), ev(event.IPXEChain, 2*time.Second, ""),
		}
		if end == endNothingToBoot {
			script := ev(event.IPXEScript, 3*time.Second, boot)
			script.Detail = event.NothingToBoot
			p.events = append(p.events, append(evs, script)...)
			p.want = StateNothingToBoot
			continue
		}
		evs = append(evs, ev(event.IPXEScript, 3*time.Second, boot),
			ev(event.Artifact, 4*time.Second, boot), ev(event.Artifact, 5*time.Second, boot),
			ev(event.Artifact, 6*time.Second, boot), ev(event.Ignition, 7*time.Second, boot))
		if end == endCut {
			// At least the DISCOVER: a boot that started.
			p.events = append(p.events, evs[:1+rng.IntN(len(evs))]...)
			p.want = StateBooting
			continue
		}
		booted := 30 * time.Second
		if rng.IntN(3) == 0 {
			// Recorded after the response was written, and stamped then:
			// a fast node's booted report can be earlier.
			evs[len(evs)-1].At = start.Add(booted + 5*ms)
		}
		evs = append(evs, ev(event.Booted, booted, boot), ev(event.Heartbeat, time.Minute, boot),
			ev(event.DHCPRequest, 2*time.Minute, ""), ev(event.DHCPAck, 2*time.Minute+ms, ""))
		if rng.IntN(4) == 0 {
			evs = append(evs, ev(event.TFTP, booted, "")) // stamped at the booted report's very time
		}
		p.events = append(p.events, evs...)
		p.want, p.wantVersion = StateProvisioned, version
	}
	return p
}

// Whatever the order in which the events of several boots of several
// machines reach the writer, and however they are split into batches,
// every machine ends in the state of its last boot: provisioned when it
// reported booted, nothing-to-boot when its script exited, booting when it
// started after the last booted report. The rebuild engine is told of every
// machine (DB.Stored).
func TestStateWhateverTheOrderOfArrival(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newClock())
	db.DiscoveryRate = -1
	var mu sync.Mutex
	notified := map[sites.MAC]bool{}
	db.Stored = func(macs []sites.MAC) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range macs {
			notified[m] = true
		}
	}
	const perms, machines = 150, 4
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for perm := range perms {
		rng := rand.New(rand.NewPCG(16, uint64(perm)))
		var plans []machinePlan
		var evs []Event
		for i := range machines {
			mac := testMAC(1000 + perm*machines + i)
			p := planBoots(rng, mac, t0.Add(time.Duration(i)*time.Second), 1+rng.IntN(3), bootEnd(rng.IntN(3)))
			plans = append(plans, p)
			evs = append(evs, p.events...)
		}
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		// Batches of 1 to 40 events, half of the permutations through
		// Record (the recorder's buffer), half stored by one write each;
		// half of each with the writer's cache of machine rows emptied
		// before every batch.
		for rest := evs; len(rest) > 0; {
			batch := rest[:min(len(rest), 1+rng.IntN(40))]
			rest = rest[len(batch):]
			if perm%4 >= 2 {
				// Read the rows from the database, not the writer's cache.
				if err := db.do(ctx, func(t *tx) error { t.db().seen.reset(); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			if perm%2 == 0 {
				for _, ev := range batch {
					if err := db.Record(ctx, ev); err != nil {
						t.Fatal(err)
					}
				}
				if err := db.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				continue
			}
			err := db.do(ctx, func(t *tx) error {
				_, err := t.storeEvents(slices.Clone(batch), false)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range plans {
			m, err := db.Machine(ctx, p.mac)
			if err != nil {
				t.Fatal(err)
			}
			// current_version is that of the latest end that was a booted
			// report: after nothing to boot, a late booted report of an
			// older boot is not counted (not checked).
			if m.State != p.want || m.CurrentVersion != p.wantVersion && p.want != StateNothingToBoot {
				t.Errorf("permutation %d, machine %s: %s on %q, want %s on %q", perm, p.mac, m.State, m.CurrentVersion, p.want, p.wantVersion)
			}
			mu.Lock()
			if !notified[p.mac] {
				t.Errorf("permutation %d: the rebuild engine was not told of machine %s", perm, p.mac)
			}
			mu.Unlock()
		}
	}
}
