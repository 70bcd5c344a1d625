package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// quorumBlock is what the engine says of a master whose rebuild breaks
// the quorum rule (the engine's tests check the rule itself).
const quorumBlock = "lab/lab-m1 is a master: rebuilding it would leave 1 of 3 masters up (etcd needs 2): lab-m2 rebuilding (rebuild 7, booting)"

// TestAPIRebuildQuorum: a rebuild the quorum rule refuses answers 409 with
// the engine's explanation; forced, it is created, and its audit entry
// says it was forced and what it overrode.
func TestAPIRebuildQuorum(t *testing.T) {
	f := newFixture(t, nil)
	f.rebuilds.mu.Lock()
	f.rebuilds.quorum = map[string]string{"lab/lab-m1": quorumBlock, "lab/lab-w1": quorumBlock}
	f.rebuilds.mu.Unlock()

	code, body := f.call(operatorSecret, http.MethodPost, "/api/v1/machines/lab/lab-m1/rebuild", nil)
	if msg := errorOf(t, body); code != http.StatusConflict || msg != quorumBlock+"; use --force to override: conflict" {
		t.Errorf("unforced: %d %q, want 409 with the explanation", code, msg)
	}
	code, body = f.call(operatorSecret, http.MethodPost, "/api/v1/machines/lab/lab-m1/rebuild", map[string]bool{"force": false})
	if code != http.StatusConflict {
		t.Errorf(`{"force": false}: %d %s, want 409`, code, body)
	}

	code, body = f.call(operatorSecret, http.MethodPost, "/api/v1/machines/lab/lab-m1/rebuild", map[string]bool{"force": true})
	if code != http.StatusAccepted {
		t.Fatalf(`{"force": true}: %d %s`, code, body)
	}
	var rb RebuildView
	if err := json.Unmarshal(body, &rb); err != nil {
		t.Fatal(err)
	}
	if rb.Machine != "lab-m1" || rb.Overrode != quorumBlock {
		t.Errorf("forced rebuild: %+v, want it to say what it overrode", rb)
	}

	// The query form, as the CLI sends it.
	if code, body := f.call(operatorSecret, http.MethodPost, "/api/v1/machines/lab/lab-w1/rebuild?force=1", nil); code != http.StatusAccepted {
		t.Errorf("?force=1: %d %s", code, body)
	}

	es := f.audit()
	if len(es) != 4 {
		t.Fatalf("audit: %d entries, want 4: %+v", len(es), es)
	}
	for i, want := range []struct{ target, result, detail string }{
		{"lab/lab-w1", "ok", "; force: overrode the master quorum rule: " + quorumBlock},
		{"lab/lab-m1", "ok", "; force: overrode the master quorum rule: " + quorumBlock},
		{"lab/lab-m1", "failed: " + quorumBlock + "; use --force to override: conflict", ""},
		{"lab/lab-m1", "failed: " + quorumBlock + "; use --force to override: conflict", ""},
	} {
		e := es[i]
		if e.Action != "rebuild" || e.Target != want.target || e.Result != want.result || !strings.HasSuffix(e.Detail, want.detail) {
			t.Errorf("audit entry %d: %s %s %q %q, want %s %q ending %q", i, e.Action, e.Target, e.Result, e.Detail,
				want.target, want.result, want.detail)
		}
	}
}

// TestAPIRebuildForceUnneeded: force on a rebuild the rule allows is
// audited as asked for, with nothing overridden.
func TestAPIRebuildForceUnneeded(t *testing.T) {
	f := newFixture(t, nil)
	code, body := f.call(operatorSecret, http.MethodPost, "/api/v1/machines/lab/lab-w2/rebuild", map[string]bool{"force": true})
	if code != http.StatusAccepted || bytes.Contains(body, []byte("overrode")) {
		t.Fatalf("forced, nothing to override: %d %s", code, body)
	}
	if es := f.audit(); len(es) != 1 || !strings.Contains(es[0].Detail, "force: nothing to override") {
		t.Errorf("audit: %+v", es)
	}
}

func TestAPIRebuildForceBad(t *testing.T) {
	f := newFixture(t, nil)
	for name, tc := range map[string]struct {
		path string
		body any
		msg  string
	}{
		"bad query value": {path: "?force=maybe", msg: `force="maybe": want 1 or 0`},
		"unknown field":   {body: map[string]bool{"forced": true}, msg: `the body must be JSON {"force": true|false} (or empty): json: unknown field "forced"`},
		"not a bool":      {body: map[string]string{"force": "yes"}, msg: `the body must be JSON {"force": true|false} (or empty): json: cannot unmarshal`},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := f.call(operatorSecret, http.MethodPost, "/api/v1/machines/lab/lab-w2/rebuild"+tc.path, tc.body)
			if code != http.StatusBadRequest || !strings.Contains(errorOf(t, body), tc.msg) {
				t.Errorf("%d %s, want 400 with %q", code, body, tc.msg)
			}
		})
	}
	if rbs, _ := f.rebuilds.MachineRebuilds(t.Context(), "52:54:00:99:00:22"); len(rbs) != 0 {
		t.Errorf("a bad request started a rebuild: %+v", rbs)
	}
}

// TestUIRebuildForce: a master's rebuild form has the force box, a
// worker's does not; the box checked forces the rebuild.
func TestUIRebuildForce(t *testing.T) {
	f := newFixture(t, nil)
	f.rebuilds.mu.Lock()
	f.rebuilds.quorum = map[string]string{"lab/lab-m1": quorumBlock}
	f.rebuilds.mu.Unlock()
	b := f.login(operatorSecret)
	if _, body := b.get("/machines/lab/lab-w2"); strings.Contains(body, `id="rebuild-force"`) {
		t.Error("a worker's rebuild form has the force box: the quorum rule never holds a worker")
	}
	_, page := b.get("/machines/lab/lab-m1")
	if !strings.Contains(page, `name="force" value="1" id="rebuild-force"`) ||
		!strings.Contains(page, "force (override the master quorum rule)") {
		t.Fatalf("the master's rebuild form lacks the force box:\n%s", page)
	}
	tok := b.formToken("/machines/lab/lab-m1")
	resp, body := b.post("/machines/lab/lab-m1/rebuild", url.Values{"csrf": {tok}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "lab-m2 rebuilding (rebuild 7, booting)") {
		t.Errorf("unforced form: %d, want 409 naming the master down\n%s", resp.StatusCode, body)
	}
	resp, _ = b.post("/machines/lab/lab-m1/rebuild", url.Values{"csrf": {tok}, "force": {"1"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/machines/lab/lab-m1?flash=rebuild-forced" {
		t.Fatalf("forced form: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body := b.get(resp.Header.Get("Location")); !strings.Contains(body, flashes["rebuild-forced"]) {
		t.Errorf("the machine page after a forced rebuild lacks its flash")
	}
	if es := f.audit(); len(es) == 0 || !strings.Contains(es[0].Detail, "force: overrode the master quorum rule: "+quorumBlock) {
		t.Errorf("audit: %+v", es)
	}
}
