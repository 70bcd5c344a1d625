package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/web"
)

// TestMachineRebuildForce: --force reaches the request as force=1, the
// override the server reports is printed, and a refusal shows the server's
// explanation.
func TestMachineRebuildForce(t *testing.T) {
	const why = "lab/lab-m1 is a master: rebuilding it would leave 1 of 3 masters up (etcd needs 2): lab-m2 failed"
	var got []string // method, path and query of each request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("force") != "1" {
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(map[string]string{"error": why + "; use --force to override: conflict"})
			return
		}
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(web.RebuildView{ID: 3, Site: "lab", Machine: "lab-m1", MAC: "52:54:00:00:00:11", State: inventory.RebuildRequested, Overrode: why})
	}))
	defer srv.Close()
	run := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := runMachine(context.Background(), append(args, "--server", srv.URL, "--token", "operator-token-0123"), &stdout, &stderr)
		return stdout.String(), err
	}

	_, err := run("rebuild", "lab/lab-m1")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(ee.msg, why+"; use --force to override") || !strings.Contains(ee.msg, "HTTP 409") {
		t.Errorf("unforced: %v, want exit 1 with the server's explanation", err)
	}
	out, err := run("rebuild", "--force", "lab/lab-m1")
	if err != nil {
		t.Fatalf("--force: %v", err)
	}
	want := "rebuild 3 of lab/lab-m1: requested\nforced past the master quorum rule: " + why + "\n"
	if out != want {
		t.Errorf("--force printed\n%s\nwant\n%s", out, want)
	}
	wantReqs := []string{"POST /api/v1/machines/lab/lab-m1/rebuild?", "POST /api/v1/machines/lab/lab-m1/rebuild?force=1"}
	if strings.Join(got, "\n") != strings.Join(wantReqs, "\n") {
		t.Errorf("requests:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantReqs, "\n"))
	}
}
