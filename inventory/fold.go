package inventory

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// FoldWindow is how long after storing an event the log counts its repeats
// instead of storing them.
//
// Why fold: the DHCP path records four events per exchange, and a client
// that does DHCP again and again (a firmware retrying PXE, a NIC in a loop,
// a DHCP storm, a load generator) would write identical rows as fast as it
// asks: 10,000 such clients made 32,000 rows a second, half the server's
// CPU and megabytes of database a second, burying the steps of the machines
// that are booting. A repeat says nothing new: the log keeps the first of a
// run and then one every FoldWindow, which carries how many it stands for
// (Event.Repeats).
//
// A boot is never folded into the one before it: any event that is not a
// repeat (a TFTP or HTTP step, booted, a heartbeat, a rebuild's transition)
// ends its machine's runs. Folding leaves the machine's row as storing
// every event would: a repeat follows its stored event with nothing else of
// the machine in between, so it changes neither its state nor its address
// (part of what repeats), and last_seen is written at most every
// lastSeenEvery anyway.
const FoldWindow = 10 * time.Second

// maxFoldMACs bounds the machines whose runs are remembered; when full the
// folder starts again empty (the next event of each machine is stored).
const maxFoldMACs = 100000

// maxRuns bounds the runs remembered per machine: the kinds of one DHCP
// exchange, for a few variants each.
const maxRuns = 16

// folder decides which events the recorder stores and which it counts as
// repeats (see FoldWindow). The recorder calls it under its lock.
type folder struct {
	runs   map[sites.MAC][]run
	folded atomic.Uint64 // repeats counted, not stored, since start
}

// run is one repeating event of a machine: what it repeats, when its last
// stored event happened, and how many repeats were counted since.
type run struct {
	same   sameness
	stored time.Time
	count  int
}

// sameness is what a repeat has in common with the event it repeats: every
// stored field but the time and what Event.Repeat leaves out of Detail.
type sameness struct {
	kind     event.Kind
	site     string
	ip       netip.Addr
	bootID   string
	version  string
	source   string
	repeated string
}

func samenessOf(ev *Event) sameness {
	return sameness{ev.Kind, ev.Site, ev.IP, ev.BootID, ev.Version, ev.Source, ev.Repeat}
}

// fold reports whether ev is to be stored. A stored repeat gets the count
// of the repeats folded into it (ev.Repeats); a repeat within FoldWindow of
// its run's stored event is counted instead. An event with no Repeat ends
// its machine's runs.
func (f *folder) fold(ev *Event) bool {
	if ev.Repeat == "" {
		f.end(ev.MAC)
		return true
	}
	same := samenessOf(ev)
	runs := f.runs[ev.MAC]
	i := slices.IndexFunc(runs, func(r run) bool { return r.same == same })
	if i < 0 {
		if f.runs == nil || len(f.runs) >= maxFoldMACs {
			f.runs = make(map[sites.MAC][]run)
		}
		if len(runs) == maxRuns {
			runs = slices.Delete(runs, 0, 1) // the oldest run
		}
		f.runs[ev.MAC] = append(runs, run{same: same, stored: ev.At})
		return true
	}
	r := &runs[i]
	// A repeat earlier than the stored one (the clock stepped back) is
	// stored: folding until the clock caught up could hide hours.
	if d := ev.At.Sub(r.stored); d >= 0 && d < FoldWindow {
		r.count++
		f.folded.Add(1)
		return false
	}
	ev.Repeats, r.count, r.stored = r.count, 0, ev.At
	return true
}

// end forgets mac's runs: an event of it was stored by another way.
func (f *folder) end(mac sites.MAC) { delete(f.runs, mac) }

// Folded returns how many events were counted as repeats rather than stored
// since the database was opened (see FoldWindow).
func (db *DB) Folded() uint64 { return db.rec.fold.folded.Load() }
