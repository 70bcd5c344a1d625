package web

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A body the endpoint cannot read is refused naming the problem: the type
// expected and the type that came, or what is wrong with the JSON. It is
// never read as no body ("write a SELECT statement", a rollout of the whole
// site, a rebuild without the force asked).
func TestBodyRefused(t *testing.T) {
	f := newFixture(t, nil)
	const (
		query    = "/api/v1/query"
		rollout  = "/api/v1/sites/lab/rollout"
		rebuild  = "/api/v1/machines/lab/lab-w2/rebuild"
		wantSQL  = `the body must be JSON {"sql": "SELECT ..."}`
		wantRoll = `the body must be JSON {"select": "rack=r12,role=worker", "machines": ["name", ...]} (both optional, or no body)`
	)
	for name, tc := range map[string]struct {
		path, ctype, body string
		code              int
		msg               string
	}{
		"query without a content type": {query, "", `{"sql": "SELECT 1"}`, http.StatusUnsupportedMediaType,
			wantSQL + ` with Content-Type: application/json; got Content-Type: (none)`},
		"query as a form (curl -d)": {query, "application/x-www-form-urlencoded", `sql=SELECT+1`, http.StatusUnsupportedMediaType,
			wantSQL + ` with Content-Type: application/json; got Content-Type: application/x-www-form-urlencoded`},
		"query with a misspelt key": {query, "application/json", `{"query": "SELECT 1"}`, http.StatusBadRequest,
			wantSQL + `: json: unknown field "query"`},
		"query with an empty body": {query, "application/json", ``, http.StatusBadRequest, wantSQL + `: it is empty`},
		"query that is not JSON": {query, "application/json; charset=utf-8", `SELECT 1`, http.StatusBadRequest,
			wantSQL + `: invalid character 'S' looking for beginning of value`},
		"query without SQL": {query, "application/json", `{"sql": " "}`, http.StatusBadRequest, `write a SELECT statement`},
		"rollout selection as text/plain": {rollout, "text/plain", `{"select": "rack=r1"}`, http.StatusUnsupportedMediaType,
			wantRoll + ` with Content-Type: application/json; got Content-Type: text/plain`},
		"rollout selection that is not JSON": {rollout, "application/json", `{"select": `, http.StatusBadRequest,
			wantRoll + `: unexpected EOF`},
		"rebuild force as text/plain": {rebuild, "text/plain", `{"force": true}`, http.StatusUnsupportedMediaType,
			`the body must be JSON {"force": true|false} (or empty) with Content-Type: application/json; got Content-Type: text/plain`},
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, f.http.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			req.Header.Set("Authorization", "Bearer "+operatorSecret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if got := errorOf(t, body); resp.StatusCode != tc.code || !strings.HasPrefix(got, tc.msg) {
				t.Errorf("%d %q\nwant %d %q", resp.StatusCode, got, tc.code, tc.msg)
			}
		})
	}
	if r, ok, _ := f.rebuilds.Rollout(t.Context(), "lab"); ok {
		t.Errorf("a refused body started a rollout: %+v", r)
	}
	if rbs, _ := f.rebuilds.MachineRebuilds(t.Context(), "52:54:00:99:00:22"); len(rbs) != 0 {
		t.Errorf("a refused body started a rebuild: %+v", rbs)
	}
}
