package inventory

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/event"
)

// withMigrations returns the embedded migrations plus extra files.
func withMigrations(t *testing.T, extra map[string]string) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	files, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := fs.ReadFile(migrationFiles, f)
		if err != nil {
			t.Fatal(err)
		}
		fsys[f] = &fstest.MapFile{Data: b}
	}
	for name, sql := range extra {
		fsys["migrations/"+name] = &fstest.MapFile{Data: []byte(sql)}
	}
	return fsys
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, pragmas))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func applied(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	return names
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, path)
	// Every embedded migration is applied; the test's own are numbered 900+
	// so that adding a migration to the tree does not collide with them.
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	var embedded []string
	for _, m := range ms {
		embedded = append(embedded, m.name)
	}
	if diff := cmp.Diff(embedded, applied(t, raw)); diff != "" {
		t.Fatalf("after Open (-want +got):\n%s", diff)
	}

	// Re-opening applies nothing again: 001 would fail on its CREATE TABLEs.
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	db.Close()

	// A new file is a new migration.
	fsys := withMigrations(t, map[string]string{
		"900_notes.sql": "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\nINSERT INTO notes (body) VALUES ('hello');",
	})
	if err := migrate(ctx, raw, fsys); err != nil {
		t.Fatal(err)
	}
	var body string
	if err := raw.QueryRow(`SELECT body FROM notes`).Scan(&body); err != nil || body != "hello" {
		t.Fatalf("900 not applied: %q, %v", body, err)
	}
	if err := migrate(ctx, raw, fsys); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if diff := cmp.Diff(append(embedded, "900_notes.sql"), applied(t, raw)); diff != "" {
		t.Fatalf("after 900 (-want +got):\n%s", diff)
	}

	// A failing migration leaves no trace: its first statement is undone
	// and it is not recorded.
	fsys["migrations/901_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE half (x);\nCREATE TABLE oops (;")}
	if err := migrate(ctx, raw, fsys); err == nil || !strings.Contains(err.Error(), "901_broken.sql") {
		t.Fatalf("broken migration: got %v, want an error naming it", err)
	}
	if err := raw.QueryRow(`SELECT count(*) FROM half`).Scan(new(int)); err == nil {
		t.Error("table of the failed migration exists")
	}
	if diff := cmp.Diff(append(embedded, "900_notes.sql"), applied(t, raw)); diff != "" {
		t.Fatalf("after broken 901 (-want +got):\n%s", diff)
	}

	// This server refuses a database at 900, newer than its migrations.
	if _, err := Open(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: got %v, want an error", err)
	}
}

func TestLoadMigrationsRejects(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"bad name":       {"1_x.sql": ""},
		"upper case":     {"001_X.sql": ""},
		"shared version": {"001_a.sql": "", "001_b.sql": ""},
	} {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for n, s := range files {
				fsys["migrations/"+n] = &fstest.MapFile{Data: []byte(s)}
			}
			if _, err := loadMigrations(fsys); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// Every pooled connection, not only the first, must run with the pragmas.
func TestPragmasOnEveryConnection(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, nil)
	var conns []*sql.Conn
	for range 4 {
		c, err := db.read.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	w, err := db.write.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, w)
	for i, c := range conns {
		var mode string
		var fk, sync, busy int
		for q, dst := range map[string]any{
			"PRAGMA journal_mode": &mode, "PRAGMA foreign_keys": &fk,
			"PRAGMA synchronous": &sync, "PRAGMA busy_timeout": &busy,
		} {
			if err := c.QueryRowContext(ctx, q).Scan(dst); err != nil {
				t.Fatalf("conn %d: %s: %v", i, q, err)
			}
		}
		if mode != "wal" || fk != 1 || sync != 1 || busy != 5000 {
			t.Errorf("conn %d: journal_mode=%s foreign_keys=%d synchronous=%d busy_timeout=%d; want wal 1 1 (NORMAL) 5000",
				i, mode, fk, sync, busy)
		}
		c.Close()
	}
}

func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ro.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.RecordSync(ctx, Event{MAC: testMAC(1), Kind: event.DHCPDiscover}); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var n int
	if err := ro.QueryRowContext(ctx, `SELECT count(*) FROM boot_events`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("read: n=%d err=%v", n, err)
	}
	for _, q := range []string{
		`DELETE FROM boot_events`,
		`CREATE TABLE x (y)`,
		`PRAGMA query_only = 0; DELETE FROM boot_events`,
	} {
		if _, err := ro.ExecContext(ctx, q); err == nil {
			t.Errorf("%s: succeeded on a read-only connection", q)
		}
	}
	if err := ro.QueryRowContext(ctx, `SELECT count(*) FROM boot_events`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after write attempts: n=%d err=%v", n, err)
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Queued writes are committed by Close.
	for i := range 50 {
		if err := db.Record(ctx, Event{MAC: testMAC(i), Kind: event.DHCPDiscover}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Record(ctx, Event{MAC: testMAC(1), Kind: event.DHCPDiscover}); !errors.Is(err, ErrClosed) {
		t.Errorf("Record after Close: %v, want ErrClosed", err)
	}
	if _, err := db.Bind(ctx, LeaseRequest{MAC: testMAC(1), IP: testIP(1)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Bind after Close: %v, want ErrClosed", err)
	}
	db, err = Open(ctx, db.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := db.RecentEvents(ctx, "", 1000)
	if err != nil || len(evs) != 50 {
		t.Errorf("after reopen: %d events, %v; want 50", len(evs), err)
	}
}

// The checkpointer moves committed pages into the database file while the
// server runs (the writer never checkpoints), and Close leaves no WAL.
func TestCheckpointer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ckpt.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			return -1
		}
		return fi.Size()
	}
	before := size(path)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < 2000; i += 8 {
				if _, err := db.Bind(ctx, LeaseRequest{MAC: testMAC(i), IP: testIP(i), Hostname: strings.Repeat("h", 40)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for size(path) < before+100*1024 {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes (WAL %d): nothing checkpointed", size(path), size(path+"-wal"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := size(path + "-wal"); n > 0 {
		t.Errorf("WAL of %d bytes left after Close", n)
	}
}

// Paths are relative or hold characters that mean something in a URI.
func TestOpenPaths(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Chdir(dir)
	for _, p := range []string{"inventory.db", "sub dir/a?b#c.db"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		db, err := Open(ctx, p)
		if err != nil {
			t.Fatalf("Open(%q): %v", p, err)
		}
		if _, err := db.RecordSync(ctx, Event{MAC: testMAC(1), Kind: event.TFTP}); err != nil {
			t.Fatal(err)
		}
		ro, err := OpenReadOnly(ctx, p)
		if err != nil {
			t.Fatalf("OpenReadOnly(%q): %v", p, err)
		}
		var n int
		if err := ro.QueryRow(`SELECT count(*) FROM boot_events`).Scan(&n); err != nil || n != 1 {
			t.Errorf("%q read-only: %d events, %v", p, n, err)
		}
		ro.Close()
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%q not created where asked: %v", p, err)
		}
	}
}
