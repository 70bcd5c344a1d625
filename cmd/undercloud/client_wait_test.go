package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/undercloud/undercloud/web"
)

// TestRolloutWaitProgress: `rollout start --wait` prints a line for every
// machine whose state changes between polls. It printed nothing while the
// rollout ran when the previous view shared its Machines with the next.
func TestRolloutWaitProgress(t *testing.T) {
	view := func(state string, machines ...string) web.RolloutView {
		ro := web.RolloutView{ID: 4, Site: "lab", Version: "2222222222222222222222222222222222222222", State: web.RolloutState(state)}
		for i := 0; i+1 < len(machines); i += 2 {
			ro.Machines = append(ro.Machines, web.RolloutMachine{Name: machines[i], State: machines[i+1], Batch: 1})
		}
		return ro
	}
	steps := []web.RolloutView{
		view("running", "lab-w1", "power-cycling", "lab-w2", "pending"),
		view("running", "lab-w1", "booting", "lab-w2", "pending"),
		view("running", "lab-w1", "done", "lab-w2", "booting"),
		view("done", "lab-w1", "done", "lab-w2", "done"),
	}
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ro := steps[min(n, len(steps)-1)]
		n++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ro)
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	err := runRollout(context.Background(), []string{"start", "lab", "--wait", "--server", srv.URL, "--token", "operator-token-0123"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("rollout start --wait: %v\n%s", err, stderr.String())
	}
	out := regexp.MustCompile(`\d\d:\d\d:\d\d `).ReplaceAllString(stdout.String(), "")
	for _, want := range []string{"lab-w1: booting", "lab-w1: done", "lab-w2: booting", "lab-w2: done", "rollout 4 of lab: done"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if c := strings.Count(out, "lab-w1: done"); c != 1 {
		t.Errorf("lab-w1's done printed %d times, want once (only changes are printed):\n%s", c, out)
	}
}
