package web

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// FuzzCheckQuery: checkQuery never panics, and a statement it accepts
// changes nothing when SQLite runs it on a *writable* database: no row
// written, no schema changed, no database attached. The read-only
// connection is the guard; this keeps the check from waving through what
// SQLite reads differently (a second statement, a write hidden in a CTE).
func FuzzCheckQuery(f *testing.F) {
	for _, q := range []string{
		"SELECT * FROM machines",
		"select mac, state from machines where site = 'lab' -- and more\n",
		"WITH x AS (SELECT 1) SELECT * FROM x",
		"WITH x AS (SELECT 1) DELETE FROM machines",
		"SELECT 1; DELETE FROM machines",
		"SELECT 1; -- trailing comment",
		"SELECT ';DELETE FROM machines'",
		`SELECT "insert" FROM machines`,
		"SELECT [delete] FROM machines",
		"SELECT 1 /* ; DROP TABLE machines */",
		"SELECT 1 /* unterminated",
		"REPLACE INTO machines VALUES (1)",
		"SELECT replace('a', 'b', 'c')",
		"SELECT load_extension('x')",
		"ATTACH 'x' AS y",
		"PRAGMA writable_schema = 1",
		"SELECT 1;;",
		"",
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c",
	} {
		f.Add(q)
	}
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE machines (mac TEXT PRIMARY KEY, site TEXT, state TEXT);
		INSERT INTO machines VALUES ('52:54:00:00:00:01', 'lab', 'booted')`); err != nil {
		f.Fatal(err)
	}
	if _, err := sqlite.Limit(conn, sqlite3.SQLITE_LIMIT_LENGTH, maxValueBytes); err != nil {
		f.Fatal(err)
	}
	state := func() (changes, schema, dbs int64) {
		if err := conn.QueryRowContext(ctx, `SELECT total_changes(), (SELECT schema_version FROM pragma_schema_version),
			(SELECT count(*) FROM pragma_database_list)`).Scan(&changes, &schema, &dbs); err != nil {
			f.Fatal(err)
		}
		return changes, schema, dbs
	}

	f.Fuzz(func(t *testing.T, q string) {
		if checkQuery(q) != nil {
			return
		}
		c0, s0, d0 := state()
		qctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if rows, err := conn.QueryContext(qctx, q); err == nil {
			for n := 0; n < 100 && rows.Next(); n++ {
			}
			rows.Close()
		}
		cancel()
		if c1, s1, d1 := state(); c1 != c0 || s1 != s0 || d1 != d0 {
			t.Fatalf("accepted %q, and SQLite ran it as a write: changes %d→%d, schema %d→%d, databases %d→%d", q, c0, c1, s0, s1, d0, d1)
		}
	})
}
