package inventory

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/testvm/testkit"
)

// newClock returns a settable time source for DB.Now.
func newClock() *testkit.Clock {
	return testkit.New(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
}

// openTest opens a fresh inventory in a temporary directory, on clk if not
// nil, closed when the test ends.
func openTest(t testing.TB, clk *testkit.Clock) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	if clk != nil {
		db.Now = clk.Now
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return db
}

// testMAC returns a distinct MAC for i.
func testMAC(i int) sites.MAC {
	return sites.MAC(fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i)))
}

// testIP returns 10.0.0.0 + i.
func testIP(i int) netip.Addr { return numAddr(10<<24 + uint32(i)) }

func testRange(first, last int) sites.Range {
	return sites.Range{Start: testIP(first), End: testIP(last)}
}

// addrs lets cmp compare netip.Addr values, whose fields are unexported.
func addrs() cmp.Option { return cmp.Comparer(func(a, b netip.Addr) bool { return a == b }) }

// fillLeases stores n bound leases at consecutive addresses from first, for
// the MACs testMAC(0..n-1), in one statement.
func fillLeases(t testing.TB, db *DB, first uint32, n int) {
	t.Helper()
	err := db.do(context.Background(), func(t *tx) error {
		_, err := t.exec(`WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?2)
			INSERT INTO leases (ip_num, ip, mac, state, expires, updated)
			SELECT ?1 + i, printf('%d.%d.%d.%d', (?1 + i) >> 24, ((?1 + i) >> 16) & 255, ((?1 + i) >> 8) & 255, (?1 + i) & 255),
				printf('52:54:%02x:%02x:%02x:%02x', i >> 24, (i >> 16) & 255, (i >> 8) & 255, i & 255),
				'bound', '2099-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'
			FROM seq`, first, n)
		return err
	})
	if err == nil {
		err = db.leases.load(context.Background(), db)
	}
	if err != nil {
		t.Fatalf("fill leases: %v", err)
	}
}

// stateStep is an event and the machine state it must leave.
type stateStep struct {
	ev   Event
	want State
}

// recordSteps records each step's event for mac, one second apart, and
// checks the machine's state after each.
func recordSteps(t *testing.T, db *DB, clk *testkit.Clock, mac sites.MAC, steps []stateStep) {
	t.Helper()
	ctx := context.Background()
	for i, s := range steps {
		clk.Advance(time.Second)
		ev := s.ev
		ev.MAC = mac
		if err := db.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		m, err := db.Machine(ctx, mac)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if m.State != s.want {
			t.Errorf("step %d, after %s %s: state %s, want %s", i, ev.Kind, ev.Detail, m.State, s.want)
		}
	}
}
