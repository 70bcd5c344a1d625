package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/undercloud/undercloud/sites"
)

// maxBatch bounds the writes of one transaction, so one commit cannot keep
// the early writers of a burst waiting behind thousands of later ones.
const maxBatch = 256

// queueLen is how many writes may wait for the writer; a caller finding the
// queue full waits (back-pressure) rather than growing memory without bound.
const queueLen = 4096

// op is one write: fn runs inside a batch transaction. fn may run twice (a
// batch is replayed when one of its writes fails), so it must not consume
// anything outside the transaction on its first run.
type op struct {
	ctx  context.Context // a write whose ctx has ended is not started
	fn   func(*tx) error
	done chan error // nil for a queued write nobody waits for
	what string     // names a queued write in the log
}

// writer is the goroutine that owns the write connection and commits the
// writes of the whole process in batches (group commit).
type writer struct {
	db  *DB
	ops chan *op

	mu     sync.RWMutex // held for reading while submitting, for writing by close
	closed bool
	exited chan struct{}

	// Statements prepared on the (single) write connection, reused by every
	// transaction; pending are queries met in the current batch, prepared
	// once it has committed and the connection is free. Only the writer
	// goroutine touches these.
	stmts   map[string]*sql.Stmt
	pending map[string]bool
}

func newWriter(db *DB) *writer {
	w := &writer{
		db:      db,
		ops:     make(chan *op, queueLen),
		exited:  make(chan struct{}),
		stmts:   map[string]*sql.Stmt{},
		pending: map[string]bool{},
	}
	go w.loop()
	return w
}

// submit hands o to the writer, waiting (bounded by ctx) while the queue is
// full.
func (w *writer) submit(ctx context.Context, o *op) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	select {
	case w.ops <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops taking writes, lets the writer commit those already queued,
// and waits for it to exit.
func (w *writer) close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.ops)
	w.mu.Unlock()
	<-w.exited
	var err error
	for _, s := range w.stmts {
		if s != nil {
			err = errors.Join(err, s.Close())
		}
	}
	return err
}

// do runs fn in a write transaction and returns once it has committed (or
// failed). If ctx ends first, do returns ctx's error and the write may or may
// not commit.
func (db *DB) do(ctx context.Context, fn func(*tx) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1)}
	if err := db.w.submit(ctx, o); err != nil {
		return err
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// queue runs fn in a coming write transaction without waiting for it; ctx
// bounds only the wait for room in the queue, not the write: the request
// that recorded an event may well be over when it is stored. An error of fn
// is logged, naming what.
func (db *DB) queue(ctx context.Context, what string, fn func(*tx) error) error {
	return db.w.submit(ctx, &op{ctx: context.Background(), fn: fn, what: what})
}

// Flush returns once every event recorded and every write queued before it
// has committed.
func (db *DB) Flush(ctx context.Context) error {
	err := db.do(ctx, db.rec.takeOnce(db, 0))
	if err != nil {
		return fmt.Errorf("flush inventory: %w", err)
	}
	return nil
}

func (w *writer) loop() {
	defer close(w.exited)
	lowerPriority(writerNice)
	batch := make([]*op, 0, maxBatch)
	errs := make([]error, maxBatch)
	for o := range w.ops {
		batch = w.gather(append(batch[:0], o))
		w.run(batch, errs[:len(batch)])
		clear(batch) // drop references to finished closures
	}
}

// gather adds to batch the writes already waiting and, when CommitDelay is
// set and there is concurrency to exploit, those arriving within it.
func (w *writer) gather(batch []*op) []*op {
	for len(batch) < maxBatch {
		select {
		case o, ok := <-w.ops:
			if !ok {
				return batch
			}
			batch = append(batch, o)
			continue
		default:
		}
		break
	}
	if w.db.CommitDelay <= 0 || len(batch) < 2 || len(batch) == maxBatch {
		return batch
	}
	t := time.NewTimer(w.db.CommitDelay)
	defer t.Stop()
	for len(batch) < maxBatch {
		select {
		case o, ok := <-w.ops:
			if !ok {
				return batch
			}
			batch = append(batch, o)
		case <-t.C:
			return batch
		}
	}
	return batch
}

// run commits batch in one transaction and reports to each write.
func (w *writer) run(batch []*op, errs []error) {
	clear(errs)
	if err := w.runTx(batch, errs); err != nil {
		// Nothing of the batch is stored: every write that had succeeded
		// fails with the transaction.
		w.db.seen.reset()
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("inventory write: %w", err)
			}
		}
	}
	for i, o := range batch {
		if o.done != nil {
			o.done <- errs[i]
		} else if errs[i] != nil {
			w.db.logError(fmt.Errorf("queued write %s: %w", o.what, errs[i]))
		}
	}
	w.prepare()
}

func (w *writer) runTx(batch []*op, errs []error) error {
	done, err := w.attempt(batch, errs, false)
	if err != nil || done {
		return err
	}
	// A write failed, and what it may have written half is in the
	// transaction: roll the whole batch back and replay it with each write
	// under its own savepoint, so only the failed one is undone. Writes
	// rarely fail, so the common case pays for no savepoint at all.
	w.db.seen.reset()
	clear(errs)
	_, err = w.attempt(batch, errs, true)
	return err
}

// attempt runs batch in one transaction and commits it. Without savepoints
// it stops at the first write that fails, rolls back and returns done false
// (errs then mean nothing); with them, a failed write is undone alone and
// the rest commits.
func (w *writer) attempt(batch []*op, errs []error, savepoints bool) (done bool, err error) {
	ctx := context.Background()
	stx, err := w.db.write.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	t := &tx{Tx: stx, ctx: ctx, w: w}
	for i, o := range batch {
		if err := o.ctx.Err(); err != nil {
			errs[i] = err // its caller is gone: do not start it
			continue
		}
		if !savepoints {
			if errs[i] = o.fn(t); errs[i] != nil {
				stx.Rollback()
				return false, nil
			}
			continue
		}
		if errs[i], err = t.savepoint(o.fn); err != nil {
			stx.Rollback()
			return false, err
		}
	}
	if err := stx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	w.db.ckpt.committed()
	if err := errors.Join(w.db.jour.committed(t.journaled), w.db.ljour.committed(t.leasesJournaled)); err != nil {
		w.db.logError(err)
	}
	if w.db.Stored != nil && len(t.steps) > 0 {
		w.db.Stored(t.steps)
	}
	return true, nil
}

// savepoint runs fn under a savepoint and undoes it if fn fails. It returns
// fn's error, and an error of its own when the transaction is unusable.
func (t *tx) savepoint(fn func(*tx) error) (fnErr, err error) {
	if _, err := t.exec("SAVEPOINT op"); err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	fnErr = fn(t)
	if fnErr != nil {
		if _, err := t.exec("ROLLBACK TO op"); err != nil {
			return fnErr, fmt.Errorf("rollback to savepoint: %w", err)
		}
		t.w.db.seen.reset()
	}
	if _, err := t.exec("RELEASE op"); err != nil {
		return fnErr, fmt.Errorf("release savepoint: %w", err)
	}
	return fnErr, nil
}

// prepare prepares the queries the last batch met for the first time, now
// that the write connection is free.
func (w *writer) prepare() {
	for q := range w.pending {
		s, err := w.db.write.PrepareContext(context.Background(), q)
		if err != nil {
			s = nil // keep running it unprepared; do not try again
		}
		w.stmts[q] = s
		delete(w.pending, q)
	}
}

// tx is a write transaction of the writer. Its statements are prepared once
// per connection: preparing costs about as much as running the small
// statements of the lease path.
type tx struct {
	*sql.Tx
	ctx context.Context
	w   *writer
	// steps are the MACs of the boot steps stored, for DB.Stored.
	steps []sites.MAC
	// journaled counts the journal's events stored (RecordDurable),
	// leasesJournaled the lease journal's changes.
	journaled, leasesJournaled int
}

// stepStored notes that a boot step of mac is stored in t.
func (t *tx) stepStored(mac sites.MAC) {
	if t.w.db.Stored != nil && mac != "" && !slices.Contains(t.steps, mac) {
		t.steps = append(t.steps, mac)
	}
}

func (t *tx) db() *DB { return t.w.db }

// stmt returns the transaction's copy of the prepared statement for query,
// or nil when it is not prepared yet.
func (t *tx) stmt(query string) *sql.Stmt {
	s, ok := t.w.stmts[query]
	if !ok {
		t.w.pending[query] = true
		return nil
	}
	if s == nil {
		return nil
	}
	return t.Tx.StmtContext(t.ctx, s)
}

func (t *tx) exec(query string, args ...any) (sql.Result, error) {
	if s := t.stmt(query); s != nil {
		return s.ExecContext(t.ctx, args...)
	}
	return t.Tx.ExecContext(t.ctx, query, args...)
}

func (t *tx) queryRow(query string, args ...any) *row {
	if s := t.stmt(query); s != nil {
		return &row{row: s.QueryRowContext(t.ctx, args...)}
	}
	return &row{row: t.Tx.QueryRowContext(t.ctx, query, args...)}
}

func (t *tx) query(query string, args ...any) (*sql.Rows, error) {
	if s := t.stmt(query); s != nil {
		return s.QueryContext(t.ctx, args...)
	}
	return t.Tx.QueryContext(t.ctx, query, args...)
}
