package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
)

// journal is a file of writes made durable ahead of the database: a write
// a client waits for (a booted report, RecordDurable; a DHCP lease, see
// leasetable.go) is appended to it as one JSON line with one write(2) and
// answered, and the writer stores it in a coming transaction. write(2) puts
// the line in the kernel's page cache, which the death of the process does
// not touch: the same promise a commit makes under synchronous=NORMAL (see
// the package doc), without waiting for the single writer behind a storm's
// batches. There are two: events (<inventory>-events) and lease changes
// (<inventory>-leases).
//
// Once every line appended has been stored the file is emptied. Open
// stores the lines a dead process left (replayJournal, replayLeases) and
// empties it.
type journal struct {
	mu       sync.Mutex
	f        *os.File
	appended int // lines appended since the file was last emptied
	stored   int // of those, how many the writer has committed
}

// journalPath is the event journal of the inventory at path.
func journalPath(path string) string { return path + "-events" }

// leaseJournalPath is the lease journal of the inventory at path.
func leaseJournalPath(path string) string { return path + "-leases" }

// openJournal opens (creating) the journal at path for appending.
func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &journal{f: f}, nil
}

// append writes v as one line.
func (j *journal) append(v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(line); err != nil {
		return fmt.Errorf("append to journal: %w", err)
	}
	j.appended++
	return nil
}

// committed counts n journaled events stored by a commit, and empties the
// file once all are.
func (j *journal) committed(n int) error {
	if j == nil || n == 0 { // nil: Open's replay, before the journal opens
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.stored += n
	if j.stored < j.appended {
		return nil
	}
	j.stored, j.appended = 0, 0
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("empty journal %s: %w", j.f.Name(), err)
	}
	return nil
}

// close closes the file, removing it when nothing in it waits to be stored.
func (j *journal) close() error {
	if j == nil { // Open failed before opening it
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.f.Close()
	if j.stored == j.appended {
		err = errors.Join(err, os.Remove(j.f.Name()))
	}
	return err
}

// readJournal returns the records of the journal at path that decode and
// pass valid, and how many of its lines do not (a line cut by a power
// loss).
func readJournal[T any](path string, valid func(T) bool) ([]T, int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var recs []T
	bad := 0
	for line := range bytes.Lines(data) {
		var rec T
		if err := json.Unmarshal(line, &rec); err != nil || !valid(rec) {
			bad++
			continue
		}
		recs = append(recs, rec)
	}
	return recs, bad, nil
}

// replayJournal stores the events the journal at path holds and
// boot_events does not, then empties it: those a dead process had answered
// for but not stored.
func (db *DB) replayJournal(ctx context.Context, path string) (replayed int, err error) {
	evs, bad, err := readJournal(path, func(ev Event) bool { return ev.MAC != "" && ev.Kind != "" })
	if err != nil {
		return 0, fmt.Errorf("read event journal %s: %w", path, err)
	}
	db.journalBad += bad
	if len(evs) > 0 {
		err = db.do(ctx, func(t *tx) error {
			var missing []Event
			for _, ev := range evs {
				var one int
				err := t.queryRow(`SELECT 1 FROM boot_events WHERE mac = ? AND kind = ? AND at = ? AND coalesce(boot_id, '') = ?`,
					string(ev.MAC), string(ev.Kind), ev.At.UTC().Format(timeFormat), ev.BootID).Scan(&one)
				if errors.Is(err, ErrNotFound) {
					missing = append(missing, ev)
				} else if err != nil {
					return err
				}
			}
			replayed = len(missing)
			if len(missing) == 0 {
				return nil
			}
			_, err := t.storeEvents(missing, false)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("replay event journal %s: %w", path, err)
		}
	}
	return replayed, emptyJournal(path)
}

// emptyJournal empties the journal at path once Open has stored it.
func emptyJournal(path string) error {
	if err := os.Truncate(path, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("empty journal %s: %w", path, err)
	}
	return nil
}
