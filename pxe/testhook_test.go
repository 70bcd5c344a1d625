package pxe

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHold holds the request it names, says so in the log, and lets every
// other request through.
func TestTestHold(t *testing.T) {
	e := newBootEnv(t)
	h := *e.h
	h.TestHold = "/boot.ipxe"
	handler, err := h.Handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/boot.ipxe", nil)
	if resp, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("held request: got %v, want it held until the client gave up", err)
	}
	if !strings.Contains(e.logs.String(), `"msg":"held by test hook","path":"/boot.ipxe"`) {
		t.Errorf("log lacks the hold:\n%s", e.logs.String())
	}
	resp, err := http.Get(srv.URL + "/ipxe?mac=" + macA)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/ipxe with the hook on /boot.ipxe: %d", resp.StatusCode)
	}
}
