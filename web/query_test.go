package web

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fingerprint is everything a write could change: each table's rows, the
// schema, the journal mode and the files next to the database.
func (f *fixture) fingerprint() string {
	f.t.Helper()
	ctx := context.Background()
	var b strings.Builder
	rows, err := f.ro.QueryContext(ctx, `SELECT type, name, coalesce(sql, '') FROM sqlite_schema ORDER BY name`)
	if err != nil {
		f.t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var typ, name, def string
		if err := rows.Scan(&typ, &name, &def); err != nil {
			f.t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s %s\n", typ, name, def)
		if typ == "table" {
			tables = append(tables, name)
		}
	}
	rows.Close()
	for _, tbl := range tables {
		var n int
		if err := f.ro.QueryRowContext(ctx, `SELECT count(*) FROM "`+tbl+`"`).Scan(&n); err != nil {
			f.t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %d rows\n", tbl, n)
	}
	var mode string
	if err := f.ro.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		f.t.Fatal(err)
	}
	fmt.Fprintf(&b, "journal_mode %s\n", mode)
	for _, q := range []string{`SELECT group_concat(mac || state || name, ',') FROM machines`,
		`SELECT group_concat(id || kind, ',') FROM boot_events`} {
		var s sql.NullString
		if err := f.ro.QueryRowContext(ctx, q).Scan(&s); err != nil {
			f.t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s\n", s.String)
	}
	entries, err := os.ReadDir(filepath.Dir(f.dbPath))
	if err != nil {
		f.t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "files %v\n", names)
	return b.String()
}

func (f *fixture) query(secret, q string) (int, QueryResult, string) {
	f.t.Helper()
	code, body := f.call(secret, http.MethodPost, "/api/v1/query", map[string]string{"sql": q})
	var res QueryResult
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &res); err != nil {
			f.t.Fatal(err)
		}
		return code, res, ""
	}
	var e struct{ Error string }
	json.Unmarshal(body, &e)
	return code, res, e.Error
}

func TestQuerySelect(t *testing.T) {
	f := newFixture(t, nil)
	code, res, msg := f.query(viewerSecret, `SELECT name, role, state FROM machines WHERE site = 'lab' AND discovered = 0 ORDER BY name`)
	if code != http.StatusOK {
		t.Fatalf("query: %d %s", code, msg)
	}
	want := QueryResult{SQL: res.SQL, Columns: []string{"name", "role", "state"}, RowLimit: 1000, Seconds: res.Seconds,
		Rows: [][]any{{"lab-m1", "master", "provisioned"}, {"lab-w1", "worker", "booting"}, {"lab-w2", "worker", "known"}}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	code, res, msg = f.query(viewerSecret, `WITH s AS (SELECT site, count(*) AS n FROM machines GROUP BY site)
		SELECT site, n, NULL AS none_, 1.5 AS x, x'00ff' AS blob FROM s WHERE site = 'second'`)
	if code != http.StatusOK {
		t.Fatalf("WITH ... SELECT: %d %s", code, msg)
	}
	if diff := cmp.Diff([][]any{{"second", float64(2), nil, 1.5, "x'00ff'"}}, res.Rows); diff != "" {
		t.Errorf("WITH ... SELECT rows (-want +got):\n%s", diff)
	}

	// The page: a GET with the statement in the URL, so it can be shared.
	b := f.login(viewerSecret)
	resp, body := b.get("/query?sql=" + url.QueryEscape(`SELECT name FROM machines WHERE role = 'master' ORDER BY name`))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("query page: %d", resp.StatusCode)
	}
	for _, w := range []string{`id="query-result"`, "<td>lab-m1</td>", "2 row(s) in", `SELECT name FROM machines WHERE role = &#39;master&#39;`} {
		if !strings.Contains(body, w) {
			t.Errorf("query page lacks %q", w)
		}
	}
}

// TestQueryRefused: the page refuses anything but a query with a clear
// message, and the inventory is unchanged.
func TestQueryRefused(t *testing.T) {
	f := newFixture(t, nil)
	page := f.login(viewerSecret) // a login is audited: before the fingerprint
	before := f.fingerprint()
	attach := filepath.Join(t.TempDir(), "x.db")
	tests := map[string]struct {
		sql, msg string
	}{
		"insert":              {`INSERT INTO machines (mac, state) VALUES ('aa:bb:cc:dd:ee:ff', 'known')`, "INSERT is refused"},
		"update":              {`UPDATE machines SET state = 'failed'`, "UPDATE is refused"},
		"delete":              {`DELETE FROM boot_events`, "DELETE is refused"},
		"replace":             {`REPLACE INTO sites (name) VALUES ('x')`, "REPLACE is refused"},
		"attach":              {`ATTACH DATABASE '` + attach + `' AS x`, "ATTACH is refused"},
		"pragma write":        {`PRAGMA journal_mode=DELETE`, "PRAGMA is refused"},
		"pragma query_only":   {`PRAGMA query_only = 0`, "PRAGMA is refused"},
		"create":              {`CREATE TABLE t (x)`, "CREATE is refused"},
		"drop":                {`DROP TABLE leases`, "DROP is refused"},
		"vacuum":              {`VACUUM`, "VACUUM is refused"},
		"with delete":         {`WITH x AS (SELECT 1) DELETE FROM machines`, "DELETE is refused: it writes"},
		"with insert":         {`WITH x AS (SELECT 1) INSERT INTO sites (name) SELECT 'x' FROM x`, "INSERT is refused: it writes"},
		"comment first":       {`/* SELECT */ DELETE FROM machines`, "DELETE is refused"},
		"line comment":        {"-- SELECT\nDELETE FROM machines", "DELETE is refused"},
		"second statement":    {`SELECT 1; DELETE FROM machines`, "one statement at a time"},
		"hidden in a comment": {"SELECT 1 /* ; */; -- x\n DELETE FROM machines", "one statement at a time"},
		"empty":               {`  -- nothing`, "write a SELECT statement"},
		"load_extension":      {`SELECT load_extension('/tmp/x.so')`, "LOAD_EXTENSION is refused"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			code, _, msg := f.query(operatorSecret, tt.sql)
			if code != http.StatusBadRequest || !strings.Contains(msg, tt.msg) {
				t.Errorf("%s: %d %q, want 400 %q", tt.sql, code, msg, tt.msg)
			}
		})
	}
	// Strings and identifiers that only look like keywords are fine.
	for _, q := range []string{`SELECT 'DELETE FROM machines; DROP TABLE x' AS s`, `SELECT "update" FROM (SELECT 1 AS "update")`,
		`SELECT replace(mac, ':', '') FROM machines`, `SELECT CASE WHEN 1 THEN 'a' END`} {
		if code, _, msg := f.query(viewerSecret, q); code != http.StatusOK {
			t.Errorf("%s: %d %s, want 200", q, code, msg)
		}
	}
	// The page says the same.
	_, body := page.get("/query?sql=" + url.QueryEscape(`DELETE FROM machines`))
	if !strings.Contains(body, `id="query-error"`) || !strings.Contains(body, "DELETE is refused") {
		t.Errorf("query page does not explain the refusal:\n%s", body)
	}
	if diff := cmp.Diff(before, f.fingerprint()); diff != "" {
		t.Errorf("the inventory changed (-before +after):\n%s", diff)
	}
	if _, err := os.Stat(attach); err == nil {
		t.Errorf("ATTACH created %s", attach)
	}
}

// TestReadOnlyConnectionRefusesWrites runs what slips past a keyword check
// straight on the read-only connection: SQLite itself refuses, and the
// inventory is unchanged. This is the real guard.
func TestReadOnlyConnectionRefusesWrites(t *testing.T) {
	f := newFixture(t, nil)
	before := f.fingerprint()
	attach := filepath.Join(t.TempDir(), "x.db")
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO sites (name) VALUES ('x')`,
		`UPDATE machines SET state = 'failed'`,
		`DELETE FROM boot_events`,
		`WITH x AS (SELECT 1) DELETE FROM machines`,
		`WITH x AS (SELECT 1) INSERT INTO sites (name) SELECT 'y' FROM x`,
		`/* SELECT */ DELETE FROM machines`,
		`CREATE TABLE t (x)`,
		`DROP TABLE leases`,
		`ATTACH DATABASE '` + attach + `' AS x`,
		`PRAGMA journal_mode=DELETE`,
		`PRAGMA query_only = 0`,
		`DELETE FROM machines`, // after query_only = 0: mode=ro still refuses
		`SELECT 1; DELETE FROM machines`,
	} {
		res, err := runReadOnly(ctx, f.ro, q, 1000, 2*time.Second)
		t.Logf("%s -> %v (result %v)", q, err, res)
		if err == nil && !strings.HasPrefix(q, "PRAGMA") && !strings.HasPrefix(q, "SELECT 1;") {
			t.Errorf("%s: no error from the read-only connection", q)
		}
		if err != nil && !strings.HasPrefix(q, "PRAGMA") && !strings.HasPrefix(q, "ATTACH") && !strings.Contains(err.Error(), "read-only") {
			t.Errorf("%s: %v, want a read-only refusal", q, err)
		}
	}
	if diff := cmp.Diff(before, f.fingerprint()); diff != "" {
		t.Errorf("the inventory changed (-before +after):\n%s", diff)
	}
	if _, err := os.Stat(attach); err == nil {
		t.Errorf("ATTACH created %s", attach)
	}

	// A writable connection is refused outright.
	rw, err := sql.Open("sqlite", f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, err := runReadOnly(ctx, rw, `SELECT 1`, 10, time.Second); err == nil || !strings.Contains(err.Error(), "writable") {
		t.Errorf("runReadOnly on a writable connection: %v, want a refusal", err)
	}
}

func TestQueryTimeLimit(t *testing.T) {
	f := newFixture(t, nil)
	start := time.Now()
	code, _, msg := f.query(viewerSecret, `WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT count(*) FROM r`)
	took := time.Since(start)
	if code != http.StatusBadRequest || !strings.Contains(msg, "the query ran for more than 2s and was stopped") {
		t.Errorf("runaway query: %d %q", code, msg)
	}
	if took > 4*time.Second {
		t.Errorf("runaway query stopped after %v, want about 2s", took)
	}
	// The connection is fine afterwards.
	if code, _, msg := f.query(viewerSecret, `SELECT count(*) FROM machines`); code != http.StatusOK {
		t.Errorf("query after a stopped one: %d %s", code, msg)
	}
}

func TestQueryLimits(t *testing.T) {
	f := newFixture(t, nil)
	code, res, msg := f.query(viewerSecret, `WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r LIMIT 5000) SELECT i FROM r`)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, msg)
	}
	if len(res.Rows) != 1000 || !res.Truncated || !strings.Contains(res.Note, "only the first 1000 rows are shown") {
		t.Errorf("%d rows, truncated %v, note %q: want 1000, true and a note", len(res.Rows), res.Truncated, res.Note)
	}
	_, body := f.login(viewerSecret).get("/query?sql=" + url.QueryEscape(`WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r LIMIT 5000) SELECT i FROM r`))
	if !strings.Contains(body, `id="query-truncated"`) || !strings.Contains(body, "1000 row(s)") {
		t.Errorf("query page does not say it truncated")
	}
	// One value cannot eat the server's memory.
	code, _, msg = f.query(viewerSecret, `SELECT length(zeroblob(100000000))`)
	if code != http.StatusBadRequest || !strings.Contains(msg, "too big") {
		t.Errorf("huge value: %d %q, want 400 too big", code, msg)
	}
}

func TestQueryExamples(t *testing.T) {
	f := newFixture(t, nil)
	for _, ex := range examples() {
		if code, _, msg := f.query(viewerSecret, ex.SQL); code != http.StatusOK {
			t.Errorf("%s: %d %s", ex.Title, code, msg)
		}
	}
	// Every declared machine but lab-m1 never booted the active version.
	_, res, _ := f.query(viewerSecret, examples()[2].SQL)
	if len(res.Rows) != 5 {
		t.Errorf("machines on an old version: %v, want 5 rows", res.Rows)
	}
}

func TestQueryWithoutConnection(t *testing.T) {
	f := newFixture(t, func(s *Server) { s.ReadOnly = nil })
	code, _, msg := f.query(viewerSecret, `SELECT 1`)
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "not available") {
		t.Errorf("%d %q, want 503", code, msg)
	}
}

func TestCheckQuery(t *testing.T) {
	for q, ok := range map[string]bool{
		"SELECT 1":               true,
		"select * from machines": true,
		"  WITH a AS (SELECT 1) SELECT * FROM a;  -- done": true,
		"SELECT 1;":                           true,
		"SELECT 'a;b'":                        true,
		"SELECT [delete] FROM x":              true,
		"SELECT `drop` FROM x":                true,
		`SELECT "it""s; DROP" FROM x`:         true,
		"VALUES (1)":                          false,
		"EXPLAIN SELECT 1":                    false,
		"SELECT 1; SELECT 2":                  false,
		"WITH a AS (DELETE FROM x) SELECT":    false,
		"SELECT * FROM x; /* ok */":           true,
		"/* unterminated":                     false,
		"INSERT OR REPLACE INTO x VALUES (1)": false,
	} {
		if err := checkQuery(q); (err == nil) != ok {
			t.Errorf("checkQuery(%q) = %v, want ok %v", q, err, ok)
		}
	}
}
