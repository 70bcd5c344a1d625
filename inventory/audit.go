package inventory

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"
)

// AuditEntry is one change an operator asked for through the web UI or the
// JSON API, and what came of it. Refused attempts are entries too: who
// tried to do what without the right to is worth keeping.
type AuditEntry struct {
	ID     int64     // assigned when stored; increasing
	At     time.Time // zero means when recorded
	Actor  string    // the API token's name; never the token itself
	Source string    // "ui" or "api" and the client address
	Action string    // rebuild, rollout-start, refresh, login, ...
	Target string    // the site or site/machine acted on
	Detail string    // what was asked, in words
	Result string    // ok, denied: ..., failed: ...
}

// RecordAudit stores e and returns it with its ID and time set, once it has
// committed: the answer to the request that made the change waits for it,
// so no change is ever reported done without its entry.
func (db *DB) RecordAudit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	if e.Actor == "" || e.Action == "" || e.Result == "" {
		return AuditEntry{}, fmt.Errorf("record audit entry %q: actor, action and result are required", e.Action)
	}
	if e.At.IsZero() {
		e.At = db.now()
	}
	e.At = e.At.UTC().Truncate(time.Millisecond)
	err := db.do(ctx, func(t *tx) error {
		res, err := t.exec(`INSERT INTO audit_log (at, actor, source, action, target, detail, result)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			fmtTime(e.At), e.Actor, e.Source, e.Action, e.Target, e.Detail, e.Result)
		if err != nil {
			return err
		}
		e.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return AuditEntry{}, fmt.Errorf("record audit entry %s of %s by %s: %w", e.Action, e.Target, e.Actor, err)
	}
	return e, nil
}

// Audit returns the latest audit entries, newest first, at most n (100 if n
// is 0).
func (db *DB) Audit(ctx context.Context, n int) ([]AuditEntry, error) {
	return db.AuditBefore(ctx, 0, n)
}

// AuditBefore returns the audit entries with an ID below before (all if
// before is 0), newest first, at most n (100 if n is 0): the pages of the
// log. The last ID returned is the next page's before.
func (db *DB) AuditBefore(ctx context.Context, before int64, n int) ([]AuditEntry, error) {
	if before <= 0 {
		before = math.MaxInt64
	}
	rows, err := db.query(ctx, `SELECT id, at, actor, source, action, target, detail, result
		FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?`, before, limit(n))
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at sql.NullString
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Source, &e.Action, &e.Target, &e.Detail, &e.Result); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		if e.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return out, nil
}
