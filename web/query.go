package web

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Limits of one query beyond rows and time.
const (
	// maxValueBytes bounds one string or blob SQLite may build (its
	// SQLITE_LIMIT_LENGTH): a zeroblob(1e9) or a runaway group_concat fails
	// instead of eating the server's memory.
	maxValueBytes = 1 << 20
	// maxResultBytes bounds a whole result; beyond it the rows are cut.
	maxResultBytes = 8 << 20
)

// QueryResult is what a query of the SQL page returned.
type QueryResult struct {
	SQL       string   `json:"sql"`
	Columns   []string `json:"columns"`
	Rows      [][]any  `json:"rows"`
	Truncated bool     `json:"truncated"`
	// Note says why the rows were cut.
	Note     string  `json:"note,omitempty"`
	RowLimit int     `json:"row_limit"`
	Seconds  float64 `json:"elapsed_seconds"`
}

// Concurrency of the SQL page: each query may take QueryTimeout of a CPU
// and of the database's read connections, and 16 viewers running 5-second
// queries took the machines' /ipxe from 1 ms to 0.9 s. So at most
// maxQueries run at once; one more waits up to queryWait for a slot, then
// is told to come back (429).
const (
	maxQueries = 2
	queryWait  = 2 * time.Second
)

// querySlots bounds the queries running at once; the zero value is ready.
type querySlots struct {
	once  sync.Once
	slots chan struct{}
}

// acquire takes a slot, waiting at most wait; release gives it back.
func (q *querySlots) acquire(ctx context.Context, wait time.Duration) (release func(), err error) {
	q.once.Do(func() { q.slots = make(chan struct{}, maxQueries) })
	release = func() { <-q.slots }
	select {
	case q.slots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case q.slots <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, kindf(ErrTooMany, "%d SQL queries are already running, the most this server runs at once so that they cannot slow down the machines' boots: try again in a few seconds", maxQueries)
	}
}

// query runs q for the query page and the API: checked for a clear refusal
// first, then run on the read-only connection, maxQueries at a time.
func (s *server) query(ctx context.Context, actor, q string) (*QueryResult, error) {
	if s.ReadOnly == nil {
		return nil, kindf(ErrUnavailable, "the SQL query page is not available on this server (no read-only connection)")
	}
	if err := checkQuery(q); err != nil {
		return nil, err
	}
	release, err := s.queries.acquire(ctx, queryWait)
	if err != nil {
		s.log.Info("sql query refused: too many running", "actor", actor)
		return nil, err
	}
	defer release()
	res, err := runReadOnly(ctx, s.ReadOnly, q, s.QueryRows, s.QueryTimeout)
	s.log.Info("sql query", "actor", actor, "ok", err == nil, "seconds", durSeconds(res))
	return res, err
}

func durSeconds(r *QueryResult) float64 {
	if r == nil {
		return 0
	}
	return r.Seconds
}

// runReadOnly runs q on db, which must be read-only, within timeout and
// keeping at most maxRows rows. This is the guard of the query page: SQLite
// itself refuses to write through a read-only connection (mode=ro,
// query_only), whatever the statement; the statement runs in a read-only
// transaction, with ATTACH disabled and the size of any value bounded.
func runReadOnly(ctx context.Context, db *sql.DB, q string, maxRows int, timeout time.Duration) (*QueryResult, error) {
	start := time.Now()
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := db.Conn(qctx)
	if err != nil {
		return nil, fmt.Errorf("query connection: %w", err)
	}
	defer conn.Close()
	if err := mustBeReadOnly(conn); err != nil {
		return nil, err
	}
	// query_only is in the DSN of every pooled connection; set it again in
	// case a statement that slipped through turned it off. mode=ro holds
	// regardless.
	if _, err := conn.ExecContext(qctx, `PRAGMA query_only = 1`); err != nil {
		return nil, fmt.Errorf("query connection: %w", err)
	}
	for _, l := range [][2]int{{sqlite3.SQLITE_LIMIT_ATTACHED, 0}, {sqlite3.SQLITE_LIMIT_LENGTH, maxValueBytes}} {
		if _, err := sqlite.Limit(conn, l[0], l[1]); err != nil {
			return nil, fmt.Errorf("query connection limits: %w", err)
		}
	}
	tx, err := conn.BeginTx(qctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, queryError(ctx, qctx, timeout, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(qctx, q)
	if err != nil {
		return nil, queryError(ctx, qctx, timeout, err)
	}
	defer rows.Close()
	res := &QueryResult{SQL: q, RowLimit: maxRows, Rows: [][]any{}}
	if res.Columns, err = rows.Columns(); err != nil {
		return nil, queryError(ctx, qctx, timeout, err)
	}
	size := 0
	for rows.Next() {
		if len(res.Rows) == maxRows {
			res.Truncated = true
			res.Note = fmt.Sprintf("only the first %d rows are shown: add a LIMIT or narrow the WHERE", maxRows)
			break
		}
		vals := make([]any, len(res.Columns))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, queryError(ctx, qctx, timeout, err)
		}
		for i, v := range vals {
			vals[i] = cell(v)
			size += cellSize(vals[i])
		}
		res.Rows = append(res.Rows, vals)
		if size > maxResultBytes {
			res.Truncated = true
			res.Note = fmt.Sprintf("only the first %d rows are shown: the result is over %d MiB", len(res.Rows), maxResultBytes>>20)
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, queryError(ctx, qctx, timeout, err)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// mustBeReadOnly refuses a connection SQLite does not hold read-only: the
// page's safety rests on it, so a wrongly wired *sql.DB must not run
// anything.
func mustBeReadOnly(conn *sql.Conn) error {
	return conn.Raw(func(dc any) error {
		ro, ok := dc.(interface{ IsReadOnly(string) (bool, error) })
		if !ok {
			return kindf(ErrUnavailable, "the query connection is not SQLite: refusing to run queries")
		}
		yes, err := ro.IsReadOnly("main")
		if err != nil {
			return fmt.Errorf("query connection: %w", err)
		}
		if !yes {
			return kindf(ErrUnavailable, "the query connection is writable (it must come from inventory.OpenReadOnly): refusing to run queries")
		}
		return nil
	})
}

// queryError explains why a query failed: stopped at the time limit,
// refused by the read-only database, or SQLite's own message.
func queryError(ctx, qctx context.Context, timeout time.Duration, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err() // the client went away
	case errors.Is(qctx.Err(), context.DeadlineExceeded):
		return kindf(ErrBadRequest, "the query ran for more than %v and was stopped: narrow it (a WHERE on an indexed column, a LIMIT), and give a recursive CTE an end condition", timeout)
	}
	msg := err.Error()
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_READONLY:
			return kindf(ErrBadRequest, "refused: the database is read-only on this page, nothing can be changed here (%s)", msg)
		case sqlite3.SQLITE_INTERRUPT:
			return kindf(ErrBadRequest, "the query was stopped: %s", msg)
		}
	}
	if strings.Contains(msg, "too many attached databases") {
		return kindf(ErrBadRequest, "refused: ATTACH is disabled on this page (%s)", msg)
	}
	return kindf(ErrBadRequest, "the query failed: %s", msg)
}

// cell turns a scanned value into what JSON and the page show: text stays
// text, a blob that is not UTF-8 shows as x'hex' (SQL's own notation).
func cell(v any) any {
	switch v := v.(type) {
	case []byte:
		if utf8.Valid(v) {
			return string(v)
		}
		return "x'" + hex.EncodeToString(v) + "'"
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	}
	return v
}

func cellSize(v any) int {
	if s, ok := v.(string); ok {
		return len(s) + 8
	}
	return 8
}

// queryRequest is the body of POST /api/v1/query.
type queryRequest struct {
	SQL string `json:"sql"`
}

func (s *server) apiQuery(c echo.Context) error {
	const want = `JSON {"sql": "SELECT ..."}`
	r := c.Request()
	if kind, err := bodyOf(r, want); err != nil {
		return err
	} else if kind != bodyJSON {
		return kindf(ErrUnsupportedMedia, "the body must be %s with Content-Type: application/json; got Content-Type: %s",
			want, contentType(r.Header.Get(echo.HeaderContentType)))
	}
	var req queryRequest
	if err := decodeJSON(r, &req, 64<<10, false, want); err != nil {
		return err
	}
	res, err := s.query(c.Request().Context(), who(c).Name, req.SQL)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}
