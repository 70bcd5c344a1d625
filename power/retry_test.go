package power

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCallRetries(t *testing.T) {
	errQuiet := classed(noAnswer, errors.New("quiet"))
	errBusy := classed(busy, errors.New("busy"))
	errAuth := classed(authFailed, errors.New("bad password"))
	errFinal := errors.New("unsupported")
	tests := map[string]struct {
		results  []error // what each attempt returns; the last repeats
		wantN    int     // attempts made
		wantIs   string
		wantText string // the whole error text, "" for success
	}{
		"first try": {
			results: []error{nil}, wantN: 1, wantIs: "nil",
		},
		"quiet then answer": {
			results: []error{errQuiet, nil}, wantN: 2, wantIs: "nil",
		},
		"never answers": {
			results: []error{errQuiet}, wantN: 3, wantIs: "ErrUnreachable",
			wantText: "ipmi 10.0.0.5:623: power on: no answer after 3 attempts (50ms each): quiet",
		},
		"busy then quiet is unreachable": {
			results: []error{errBusy, errQuiet}, wantN: 3, wantIs: "ErrUnreachable",
			wantText: "ipmi 10.0.0.5:623: power on: no answer after 3 attempts (50ms each): quiet",
		},
		"stays busy": {
			results: []error{errBusy}, wantN: 3, wantIs: "other",
			wantText: "ipmi 10.0.0.5:623: power on: still failing after 3 attempts: busy",
		},
		"auth is not retried": {
			results: []error{errAuth}, wantN: 1, wantIs: "ErrAuth",
			wantText: "ipmi 10.0.0.5:623: power on: bmc rejected the credentials: bad password",
		},
		"permanent is not retried": {
			results: []error{errQuiet, errFinal}, wantN: 2, wantIs: "other",
			wantText: "ipmi 10.0.0.5:623: power on: unsupported",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := Config{Driver: "ipmi", Timeout: 50 * time.Millisecond, Backoff: time.Millisecond}.caller("10.0.0.5:623")
			n := 0
			err := c.call(context.Background(), "power on", func(context.Context) error {
				r := tc.results[min(n, len(tc.results)-1)]
				n++
				return r
			})
			got := struct {
				N        int
				Is, Text string
			}{n, errorsIs(err), ""}
			if err != nil {
				got.Text = err.Error()
			}
			want := struct {
				N        int
				Is, Text string
			}{tc.wantN, tc.wantIs, tc.wantText}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestCallTimeout: an attempt that outlives its timeout counts as no answer,
// even when it returns a plain error (a killed process, a closed socket).
func TestCallTimeout(t *testing.T) {
	c := Config{Driver: "qmp", Timeout: 20 * time.Millisecond, Attempts: 2, Backoff: time.Millisecond}.caller("/run/vm.qmp")
	start := time.Now()
	err := c.call(context.Background(), "query-status", func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("signal: killed")
	})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
	want := "qmp /run/vm.qmp: query-status: no answer after 2 attempts (20ms each): no answer within 20ms: signal: killed"
	if err.Error() != want {
		t.Errorf("got  %q\nwant %q", err, want)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %s", d)
	}
}

// TestCallCancel: the caller's own context ends the retries at once.
func TestCallCancel(t *testing.T) {
	c := Config{Driver: "ipmi", Timeout: time.Second, Attempts: 5, Backoff: time.Hour}.caller("h:623")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	err := c.call(ctx, "power off", func(context.Context) error { return classed(noAnswer, errors.New("quiet")) })
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "ipmi h:623: power off: context canceled (attempt 1: quiet)") {
		t.Errorf("got %q", err)
	}
}
