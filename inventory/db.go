// Package inventory is the server's SQLite store of everything it has seen and
// done: machines, DHCP leases, boot events and the config versions of each
// site.
//
// # Durability
//
// The database runs in WAL mode with synchronous=NORMAL. In WAL mode a commit
// appends the transaction's pages to the -wal file with write(2) before the
// commit returns; NORMAL only skips the fsync, which WAL defers to
// checkpoints. The written pages live in the kernel's page cache, which a
// process crash (kill -9, panic, OOM kill) does not touch, so every committed
// transaction survives the death of the server process. What NORMAL gives up
// is the last transactions before a power loss or kernel crash (the database
// itself stays consistent); FULL would fsync every commit, which the lease
// path could not afford per packet and the group commit only partly hides.
//
// # Writes
//
// SQLite allows one writer at a time, so every write of the process goes
// through one goroutine that owns the only write connection (writer.go). It
// gathers the writes that arrive while the previous transaction commits and
// commits them together (group commit). Each write runs under its own
// savepoint, so one failing write does not undo the others of its batch.
// Boot events are cheaper still: Record buffers them in memory and the
// writer stores the whole buffer in its next transaction (recorder.go).
//
// What a client waits for does not wait for the writer: a DHCP lease is
// decided in the in-memory lease table (leasetable.go) and a booted report
// buffered, each appended first to a journal file with one write(2), which
// a process crash does not undo either (journal.go); Open stores what a
// dead process left there.
// Checkpoints run on a connection of their own (checkpoint.go), so no commit
// waits for one. Reads use a separate pool of query-only connections and
// never wait for the writer: WAL readers see the last commit. One process
// owns the file; the allocator's cursors assume no other writer.
//
// # Representation
//
// Times are UTC text with milliseconds, fixed width
// (2026-03-01T10:00:00.000Z): readable on the SQL query page, ordered as
// text, and understood by SQLite's date functions. MACs are stored in the
// canonical form of sites.MAC. The schema lives in migrations/NNN_name.sql,
// applied in order at Open.
package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/undercloud/undercloud/sites"
)

// Error kinds. Errors returned by DB wrap one of these with context; callers
// test them with errors.Is.
var (
	// ErrNotFound means the machine, lease, site or version does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the write contradicts what is stored, such as binding
	// an address another machine holds.
	ErrConflict = errors.New("conflict")
	// ErrRangeFull means a dynamic range has no address left to allocate:
	// every address is leased, offered or held after a decline.
	ErrRangeFull = errors.New("dynamic range full")
	// ErrClosed means the DB was closed.
	ErrClosed = errors.New("inventory closed")
)

// DB is the inventory. It is safe for concurrent use. Set its exported
// fields right after Open, before the first call.
type DB struct {
	// Now returns the current time; nil means time.Now. Tests pin it.
	Now func() time.Time
	// Log receives the errors no caller can be told of: of queued writes
	// (Record) and of checkpoints. Nil discards them.
	Log *slog.Logger
	// CommitDelay is how long the writer waits for more writes to join a
	// transaction once it holds more than one. Zero, the default, commits
	// what has arrived at once: the writes arriving during one commit make
	// up the next batch anyway, and on this project's hardware every delay
	// tried (0.5-2 ms) lowered throughput and raised latency.
	CommitDelay time.Duration
	// Stored, when set, is told after each commit the MACs whose boot
	// steps (event.Kind.Step) it stored. The rebuild engine follows a
	// rebuild from the stored events, so it is told only once it can read
	// them. It runs on the writer and must not block.
	Stored func(macs []sites.MAC)
	// DiscoveryRate bounds how many MACs never seen before (no machine
	// row) each site's traffic may add per minute, through Record and
	// Observe (DefaultDiscoveryRate if 0, no bound if negative). Events
	// and observations of the others are dropped and counted
	// (DiscoveriesDropped): unauthenticated traffic with random MACs
	// cannot grow the inventory faster than retention prunes it (see
	// discovery.go). Known machines are always recorded.
	DiscoveryRate int

	path  string
	read  *sql.DB
	write *sql.DB
	w     *writer
	ckpt  *checkpointer
	seen  machineCache // touched only inside write transactions
	// leases is the lease table, authoritative for lease decisions
	// (leasetable.go); ljour is its journal.
	leases leaseTable
	ljour  *journal
	disc   discoveryLimiter
	rec    recorder
	jour   *journal // events answered for before they are stored (RecordDurable)

	// journalReplayed and journalBad are what Open found in the journals
	// a dead process left (JournalReplayed).
	journalReplayed, journalBad int

	closed atomic.Bool

	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt // prepared read statements, by query
}

// pragmas are set on every pooled connection through the DSN.
//
// synchronous(NORMAL) in WAL mode keeps every committed transaction across a
// process kill -9: the commit has written the WAL before returning and only
// the fsync is deferred to checkpoints (see the package doc).
// temp_store(MEMORY) keeps the savepoint journals of the writer's batches in
// memory; by default a journal over 64 KiB spills to a temporary file,
// created and deleted per batch.
// journal_size_limit(WALLimit): when the writer starts the WAL over, it
// truncates the file to this size; without it the WAL keeps the size of its
// largest burst for good (a flood once left 1.1 GB). The checkpointer also
// truncates a WAL that grows past it (checkpoint.go).
const pragmas = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(ON)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_pragma=journal_size_limit(67108864)"

// WALLimit is the size past which the WAL is truncated: the
// journal_size_limit of every connection, and the size at which the
// checkpointer forces a truncating checkpoint.
const WALLimit = 64 << 20

// dsn returns the URI that opens path with the given query parameters. The
// path is made absolute (a relative one would read as the URI's host) and
// escaped, so names with spaces, ? or # work.
func dsn(path, params string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	u := url.URL{Scheme: "file", Path: path}
	return u.String() + "?" + params
}

// Open opens (creating if needed) the inventory at path and applies the
// migrations it lacks. The caller must Close it.
func Open(ctx context.Context, path string) (*DB, error) {
	// _txlock=immediate: the writer's transactions take the write lock at
	// BEGIN, so a second process touching the file waits in busy_timeout
	// instead of failing when a read transaction upgrades.
	// wal_autocheckpoint(0): the checkpointer does it, off the commit path.
	// cache_size(-32768): 32 MiB of pages for the writer, so a batch of
	// thousands of boot events does not spill dirty pages to the WAL before
	// its commit (SQLite's default is 2 MiB).
	write, err := sql.Open("sqlite", dsn(path, pragmas+"&_txlock=immediate&_pragma=wal_autocheckpoint(0)&_pragma=cache_size(-32768)"))
	if err != nil {
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	// One connection, kept forever: the writer's prepared statements stay
	// valid and nothing else can write.
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := migrate(ctx, write, migrationFiles); err != nil {
		write.Close()
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	read, err := sql.Open("sqlite", dsn(path, pragmas+"&_pragma=query_only(1)"))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open inventory %s for reading: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	db := &DB{path: path, read: read, write: write, stmts: map[string]*sql.Stmt{}}
	if db.ckpt, err = newCheckpointer(path, db.logError); err != nil {
		read.Close()
		write.Close()
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	db.w = newWriter(db)
	if err = db.openJournals(ctx); err != nil {
		db.w.close()
		db.jour.close()
		db.ljour.close()
		db.ckpt.close()
		read.Close()
		write.Close()
		return nil, fmt.Errorf("open inventory %s: %w", path, err)
	}
	return db, nil
}

// openJournals stores what the journals of a dead process hold, opens
// them, and loads the lease table.
func (db *DB) openJournals(ctx context.Context) error {
	events, leases := journalPath(db.path), leaseJournalPath(db.path)
	n, err := db.replayJournal(ctx, events)
	if err != nil {
		return err
	}
	m, err := db.replayLeases(ctx, leases)
	if err != nil {
		return err
	}
	db.journalReplayed = n + m
	if db.jour, err = openJournal(events); err != nil {
		return err
	}
	if db.ljour, err = openJournal(leases); err != nil {
		return err
	}
	return db.leases.load(ctx, db)
}

// JournalReplayed is what Open found in the journals of a process that
// died: how many booted reports and DHCP leases it stored from there
// (answered for, not yet stored when the process died), and how many lines
// it could not read (cut by a power loss; their clients had no answer).
func (db *DB) JournalReplayed() (stored, unreadable int) {
	return db.journalReplayed, db.journalBad
}

// OpenReadOnly opens path for queries only: SQLite opens the file read-only
// (mode=ro) and the connection refuses writes (query_only), so what the SQL
// query page runs cannot change the inventory. The caller must close it.
func OpenReadOnly(ctx context.Context, path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, "mode=ro&_pragma=busy_timeout(5000)&_pragma=query_only(1)"))
	if err != nil {
		return nil, fmt.Errorf("open inventory %s read-only: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open inventory %s read-only: %w", path, err)
	}
	return db, nil
}

// Close stores the events recorded and the writes queued, then closes the
// database. Calls after the first return nil.
func (db *DB) Close() error {
	if !db.closed.CompareAndSwap(false, true) {
		return nil
	}
	ferr := db.Flush(context.Background())
	werr := db.w.close()
	jerr := errors.Join(db.jour.close(), db.ljour.close())
	cerr := db.ckpt.close()
	db.stmtMu.Lock()
	for _, s := range db.stmts {
		s.Close()
	}
	db.stmtMu.Unlock()
	rerr := db.read.Close()
	err := db.write.Close()
	if err = errors.Join(ferr, werr, jerr, cerr, rerr, err); err != nil {
		return fmt.Errorf("close inventory %s: %w", db.path, err)
	}
	return nil
}

// logError logs an error no caller can be told of.
func (db *DB) logError(err error) {
	if db.Log != nil {
		db.Log.Error("inventory", "err", err)
	}
}

// now returns the current time in UTC at the stored precision, so what a
// method returns equals what a later read returns.
func (db *DB) now() time.Time {
	now := time.Now
	if db.Now != nil {
		now = db.Now
	}
	return now().UTC().Truncate(time.Millisecond)
}

// rstmt returns the read-pool statement for query, preparing it once:
// preparing costs about as much as running the small lookups of the DHCP path.
func (db *DB) rstmt(ctx context.Context, query string) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if s, ok := db.stmts[query]; ok {
		return s, nil
	}
	s, err := db.read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	db.stmts[query] = s
	return s, nil
}

// queryRow runs a single-row read on the read pool.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) *row {
	s, err := db.rstmt(ctx, query)
	if err != nil {
		return &row{err: err}
	}
	return &row{row: s.QueryRowContext(ctx, args...)}
}

// query runs a read on the read pool.
func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := db.rstmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// row is a *sql.Row that may carry an error from preparing its statement.
type row struct {
	row *sql.Row
	err error
}

// Scan is (*sql.Row).Scan, mapping sql.ErrNoRows to ErrNotFound.
func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	err := r.row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// timeFormat is how times are stored: UTC, fixed width, milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z"

// fmtTime formats t for storage; the zero time is stored as NULL.
func fmtTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(timeFormat)
}

// parseTime reads a stored time; NULL is the zero time.
func parseTime(s sql.NullString) (time.Time, error) {
	if !s.Valid || s.String == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(timeFormat, s.String)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s.String, err)
	}
	return t, nil
}
