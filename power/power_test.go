package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/sites"
)

// need fails the test when a tool a test runs is missing, naming the Debian
// package that provides it: a missing peer is a broken test machine, never a
// reason to skip.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (apt-get install %s)", tool, pkg, pkg)
	}
	return p
}

// testPassword is distinctive so that a leak into arguments, errors or logs
// is found by a plain substring search.
const testPassword = "Pw-7c1e-notShown" // 16 bytes: the most IPMI 1.5 takes

func TestStateString(t *testing.T) {
	got := []string{On.String(), Off.String(), Unknown.String(), State(42).String()}
	if diff := cmp.Diff([]string{"on", "off", "unknown", "unknown"}, got); diff != "" {
		t.Errorf("State.String (-want +got):\n%s", diff)
	}
}

func TestCredentialsRedacted(t *testing.T) {
	c := Credentials{Username: "admin", Password: testPassword}
	cfg := Config{Driver: DriverIPMI, Address: "10.0.0.5", Credentials: c}
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("creds", "creds", c, "config", cfg)
	log.Info("text", "creds", fmt.Sprint(c))
	tests := map[string]string{
		"%v":       fmt.Sprintf("%v", c),
		"%+v":      fmt.Sprintf("%+v", c),
		"%#v":      fmt.Sprintf("%#v", c),
		"%s":       fmt.Sprintf("%s", c),
		"config":   fmt.Sprintf("%v %+v", cfg, cfg),
		"config#":  fmt.Sprintf("%#v", cfg.Credentials),
		"slog":     logged.String(),
		"String()": c.String(),
	}
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(s, testPassword) {
				t.Errorf("password shown in %s", hidePassword(s))
			}
			if !strings.Contains(s, "admin") {
				t.Errorf("user not shown in %s", hidePassword(s))
			}
		})
	}
	if got, want := fmt.Sprint(Credentials{Username: "u"}), "u"; got != want {
		t.Errorf("no password: got %q, want %q", got, want)
	}
}

func TestNewChecksConfig(t *testing.T) {
	tests := map[string]struct {
		cfg     Config
		wantErr string // substring; empty: New succeeds
	}{
		"ipmi host":                   {cfg: Config{Driver: "ipmi", Address: "10.0.0.5"}},
		"ipmi host port":              {cfg: Config{Driver: "ipmi", Address: "bmc-1.example:1623"}},
		"ipmi lan":                    {cfg: Config{Driver: "ipmi", Address: "10.0.0.5", IPMIInterface: "lan"}},
		"ipmi bad interface":          {cfg: Config{Driver: "ipmi", Address: "10.0.0.5", IPMIInterface: "open"}, wantErr: "want lanplus or lan"},
		"ipmi bad port":               {cfg: Config{Driver: "ipmi", Address: "10.0.0.5:99999"}, wantErr: "want 1-65535"},
		"ipmi userinfo":               {cfg: Config{Driver: "ipmi", Address: "admin:" + testPassword + "@10.0.0.5"}, wantErr: "holds credentials"},
		"redfish":                     {cfg: Config{Driver: "redfish", Address: "https://10.0.0.5"}},
		"redfish no scheme":           {cfg: Config{Driver: "redfish", Address: "10.0.0.5"}, wantErr: "want a URL"},
		"redfish userinfo":            {cfg: Config{Driver: "redfish", Address: "https://admin:" + testPassword + "@10.0.0.5"}, wantErr: "holds credentials"},
		"redfish no scheme, userinfo": {cfg: Config{Driver: "redfish", Address: "admin:" + testPassword + "@10.0.0.5"}, wantErr: "holds credentials"},
		"qmp":                         {cfg: Config{Driver: "qmp", Address: "/run/lab/vm1.qmp"}},
		"qmp relative":                {cfg: Config{Driver: "qmp", Address: "vm1.qmp"}, wantErr: "absolute path"},
		"no address":                  {cfg: Config{Driver: "ipmi"}, wantErr: "no address"},
		"unknown driver":              {cfg: Config{Driver: "wol", Address: "x"}, wantErr: `"wol": unknown`},
		"negative timeout":            {cfg: Config{Driver: "ipmi", Address: "x", Timeout: -1}, wantErr: "must not be negative"},
		"negative attempts":           {cfg: Config{Driver: "ipmi", Address: "x", Attempts: -1}, wantErr: "must not be negative"},
		"empty driver":                {cfg: Config{Address: "x"}, wantErr: "unknown"},
		"redfish query string":        {cfg: Config{Driver: "redfish", Address: "https://h/?a=b"}, wantErr: "no query"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, err := New(tc.cfg)
			if tc.wantErr == "" {
				if err != nil || d == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New: got error %v, want one containing %q", hideErr(err), tc.wantErr)
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Errorf("error shows the password: %v", hideErr(err))
			}
		})
	}
}

// TestDriversMatchSites keeps the names a site config may give in bmc.driver
// and the drivers New knows the same.
func TestDriversMatchSites(t *testing.T) {
	addr := map[string]string{DriverIPMI: "10.0.0.5", DriverRedfish: "https://10.0.0.5", DriverQMP: "/run/vm.qmp"}
	var got []string
	for _, name := range sites.BMCDrivers {
		if _, err := New(Config{Driver: name, Address: addr[name]}); err != nil {
			t.Errorf("site driver %q: %v", name, err)
		}
		got = append(got, name)
	}
	if diff := cmp.Diff([]string{DriverIPMI, DriverRedfish, DriverQMP}, got); diff != "" {
		t.Errorf("sites.BMCDrivers (-power +sites):\n%s", diff)
	}
}

// recorder is a Driver that records the calls PXEReboot makes; it stands in
// for the BMC only in the test of that pure sequence, the drivers themselves
// are tested against real peers.
type recorder struct {
	state State
	fail  string // the call that fails
	calls []string
}

func (r *recorder) do(name string) error {
	r.calls = append(r.calls, name)
	if name == r.fail {
		return fmt.Errorf("%s failed", name)
	}
	return nil
}

func (r *recorder) Status(context.Context) (State, error) {
	if err := r.do("status"); err != nil {
		return Unknown, err
	}
	return r.state, nil
}
func (r *recorder) On(context.Context) error      { return r.do("on") }
func (r *recorder) Off(context.Context) error     { return r.do("off") }
func (r *recorder) Cycle(context.Context) error   { return r.do("cycle") }
func (r *recorder) PXEOnce(context.Context) error { return r.do("pxe") }

func TestPXEReboot(t *testing.T) {
	tests := map[string]struct {
		state     State
		fail      string
		wantCalls []string
		wantErr   string
	}{
		"on is reset":       {state: On, wantCalls: []string{"pxe", "status", "cycle"}},
		"off is powered on": {state: Off, wantCalls: []string{"pxe", "status", "on"}},
		"pxe fails":         {state: On, fail: "pxe", wantCalls: []string{"pxe"}, wantErr: "pxe reboot: set next boot to pxe: pxe failed"},
		"status fails":      {state: On, fail: "status", wantCalls: []string{"pxe", "status"}, wantErr: "pxe reboot: status failed"},
		"cycle fails":       {state: On, fail: "cycle", wantCalls: []string{"pxe", "status", "cycle"}, wantErr: "pxe reboot: cycle: cycle failed"},
		"on fails":          {state: Off, fail: "on", wantCalls: []string{"pxe", "status", "on"}, wantErr: "pxe reboot: power on: on failed"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := &recorder{state: tc.state, fail: tc.fail}
			err := PXEReboot(context.Background(), r)
			if diff := cmp.Diff(tc.wantCalls, r.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tc.wantErr {
				t.Errorf("error: got %q, want %q", gotErr, tc.wantErr)
			}
		})
	}
}

// hideErr is hidePassword for an error, nil-safe.
func hideErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return hidePassword(err.Error())
}

// pxeReboot is PXEReboot in the shape of a Driver method expression, for
// tables of steps.
func pxeReboot(d Driver, ctx context.Context) error { return PXEReboot(ctx, d) }

// errorsIs is a compact check of the sentinel an error matches.
func errorsIs(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, ErrUnreachable):
		return "ErrUnreachable"
	case errors.Is(err, ErrAuth):
		return "ErrAuth"
	}
	return "other"
}

// testLogger logs to the test's output at Debug level and fails the test if
// a line holds the test password.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	line := strings.TrimRight(string(b), "\n")
	if strings.Contains(line, testPassword) {
		w.t.Errorf("password logged: %s", hidePassword(line))
	}
	w.t.Log(hidePassword(line))
	return len(b), nil
}

// hidePassword keeps a leaked test password out of the test's own failure
// messages.
func hidePassword(s string) string {
	return strings.ReplaceAll(s, testPassword, "<THE-PASSWORD>")
}
