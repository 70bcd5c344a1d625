package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/undercloud/undercloud/web"
)

// TestStatusVersionWords: status names a bound version the way the API
// does -- rejected when the gate refused it, pending while undecided.
func TestStatusVersionWords(t *testing.T) {
	sites := []web.SiteView{
		{Name: "lab", Binding: "v3-broken", Active: &web.VersionView{Label: "v2"},
			Pending: &web.VersionView{Label: "v3-broken"}, Problems: []string{"sites/lab/site.yaml:machines: 2 masters"}},
		{Name: "second", Binding: "v4", Active: &web.VersionView{Label: "v1"}, Pending: &web.VersionView{Label: "v4"}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/v1/sites" {
			json.NewEncoder(w).Encode(map[string]any{"sites": sites})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"machines": []web.MachineView{}})
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	if err := runStatus(context.Background(), []string{"--server", srv.URL, "--token", "viewer-token-0123456"}, &stdout, &stderr); err != nil {
		t.Fatalf("status: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"rejected v3-broken", "pending v4"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "pending v3-broken") {
		t.Errorf("status calls the rejected version pending:\n%s", out)
	}
}
