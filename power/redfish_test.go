package power

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stmcginnis/gofish/schemas"
)

// redfishDriver returns a driver for the fake's server with test defaults.
func redfishDriver(t *testing.T, srv *httptest.Server, c Config) Driver {
	t.Helper()
	c.Driver, c.Address = DriverRedfish, srv.URL
	if c.Credentials == (Credentials{}) {
		c.Credentials = Credentials{Username: "root", Password: testPassword}
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Backoff == 0 {
		c.Backoff = 10 * time.Millisecond
	}
	c.Log = testLogger(t)
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRedfishPXEReboot(t *testing.T) {
	tests := map[string]struct {
		power      string
		resetTypes []string // nil: the fake's full list
		noSessions bool
		tls        bool
		wantOps    []string
	}{
		"on: override then ForceRestart": {
			power:   "On",
			wantOps: []string{"PATCH Boot Pxe Once", "Reset ForceRestart", "boot Pxe"},
		},
		"off: override then On": {
			power:   "Off",
			wantOps: []string{"PATCH Boot Pxe Once", "Reset On", "boot Pxe"},
		},
		"on, no ForceRestart: PowerCycle": {
			power: "On", resetTypes: []string{"On", "ForceOff", "GracefulRestart", "PowerCycle"},
			wantOps: []string{"PATCH Boot Pxe Once", "Reset PowerCycle", "boot Pxe"},
		},
		"on, only GracefulRestart": {
			power: "On", resetTypes: []string{"On", "ForceOff", "GracefulRestart"},
			wantOps: []string{"PATCH Boot Pxe Once", "Reset GracefulRestart", "boot Pxe"},
		},
		"off, only ForceOn": {
			power: "Off", resetTypes: []string{"ForceOn", "ForceOff", "ForceRestart"},
			wantOps: []string{"PATCH Boot Pxe Once", "Reset ForceOn", "boot Pxe"},
		},
		"basic auth without a session service": {
			power: "On", noSessions: true,
			wantOps: []string{"PATCH Boot Pxe Once", "Reset ForceRestart", "boot Pxe"},
		},
		"https, self-signed, insecure": {
			power: "On", tls: true,
			wantOps: []string{"PATCH Boot Pxe Once", "Reset ForceRestart", "boot Pxe"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeRedfish(t, tc.power)
			f.noSessions = tc.noSessions
			if tc.resetTypes != nil {
				f.resetTypes = tc.resetTypes
			}
			srv := f.start(tc.tls)
			d := redfishDriver(t, srv, Config{Insecure: tc.tls})
			if err := PXEReboot(context.Background(), d); err != nil {
				t.Fatal(hideErr(err))
			}
			if diff := cmp.Diff(tc.wantOps, f.done()); diff != "" {
				t.Errorf("operations (-want +got):\n%s", diff)
			}
			if n := f.liveSessions(); n != 0 {
				t.Errorf("%d sessions left open on the BMC", n)
			}
			if r := f.refused(); len(r) > 0 {
				t.Errorf("the fake refused requests: %v", r)
			}
		})
	}
}

// TestRedfishPowerOps walks one system through each operation.
func TestRedfishPowerOps(t *testing.T) {
	f := newFakeRedfish(t, "Off")
	d := redfishDriver(t, f.start(false), Config{})
	ctx := context.Background()
	steps := []struct {
		name    string
		do      func(Driver, context.Context) error
		wantOps []string
		want    State
	}{
		{"on", Driver.On, []string{"Reset On", "boot default"}, On},
		{"on when on does nothing", Driver.On, nil, On},
		{"cycle when on", Driver.Cycle, []string{"Reset ForceRestart", "boot default"}, On},
		{"pxe once", Driver.PXEOnce, []string{"PATCH Boot Pxe Once"}, On},
		{"off", Driver.Off, []string{"Reset ForceOff"}, Off},
		{"off when off does nothing", Driver.Off, nil, Off},
		{"cycle when off boots the pending override", Driver.Cycle, []string{"Reset On", "boot Pxe"}, On},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(d, ctx); err != nil {
				t.Fatal(hideErr(err))
			}
			if diff := cmp.Diff(st.wantOps, f.done()); diff != "" {
				t.Errorf("operations (-want +got):\n%s", diff)
			}
			got, err := d.Status(ctx)
			if err != nil {
				t.Fatal(hideErr(err))
			}
			if got != st.want {
				t.Errorf("status: got %s, want %s", got, st.want)
			}
		})
	}
	if r := f.refused(); len(r) > 0 {
		t.Errorf("the fake refused requests: %v", r)
	}
}

func TestRedfishAuth(t *testing.T) {
	for name, noSessions := range map[string]bool{"session": false, "basic": true} {
		t.Run(name, func(t *testing.T) {
			f := newFakeRedfish(t, "On")
			f.noSessions = noSessions
			wrong := "Wrong-" + testPassword
			srv := f.start(false)
			d := redfishDriver(t, srv, Config{Credentials: Credentials{"root", wrong}, Attempts: 3, Backoff: time.Second})
			start := time.Now()
			err := PXEReboot(context.Background(), d)
			t.Log(hideErr(err))
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("got %v, want ErrAuth", hideErr(err))
			}
			if time.Since(start) > time.Second {
				t.Errorf("took %s: an auth failure must not be retried", time.Since(start))
			}
			if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), testPassword) {
				t.Errorf("error shows a password")
			}
			want := "pxe reboot: set next boot to pxe: redfish " + srv.URL + ": boot override pxe: bmc rejected the credentials: "
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got  %q\nwant %q...", hideErr(err), want)
			}
			if diff := cmp.Diff([]string(nil), f.done()); diff != "" {
				t.Errorf("operations (-want +got):\n%s", diff)
			}
			if !noSessions && f.logins != 1 {
				t.Errorf("%d logins, want 1", f.logins)
			}
		})
	}
}

func TestRedfishUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens at url any more
	d, err := New(Config{Driver: DriverRedfish, Address: url, Credentials: Credentials{"root", testPassword},
		Timeout: time.Second, Attempts: 2, Backoff: 10 * time.Millisecond, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Status(context.Background())
	t.Log(hideErr(err))
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", hideErr(err))
	}
	want := "redfish " + url + ": power status: no answer after 2 attempts (1s each): connect: "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got  %q\nwant %q...", hideErr(err), want)
	}
}

// TestRedfishCertificate: without insecure, a self-signed certificate is a
// clear, final error, not an unreachable BMC.
func TestRedfishCertificate(t *testing.T) {
	f := newFakeRedfish(t, "On")
	d := redfishDriver(t, f.start(true), Config{Attempts: 3, Backoff: time.Second})
	_, err := d.Status(context.Background())
	if err == nil || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "bmc.insecure") {
		t.Fatalf("got %v, want a certificate error that mentions bmc.insecure", hideErr(err))
	}
}

// TestRedfishNoAllowedRestart: a service that allows no hard or graceful
// restart gets no Reset at all.
func TestRedfishNoAllowedRestart(t *testing.T) {
	f := newFakeRedfish(t, "On")
	f.resetTypes = []string{"On", "ForceOff", "Nmi"}
	d := redfishDriver(t, f.start(false), Config{})
	err := d.Cycle(context.Background())
	if err == nil || !strings.Contains(err.Error(), "allows none of the reset types") {
		t.Fatalf("got %v", hideErr(err))
	}
	if ops := f.done(); len(ops) != 0 {
		t.Errorf("operations: %v", ops)
	}
}

// TestFakeRedfishEnforcesProtocol checks the fake itself, with a plain HTTP
// client: what it refuses, the driver could not get away with.
func TestFakeRedfishEnforcesProtocol(t *testing.T) {
	f := newFakeRedfish(t, "On")
	srv := f.start(false)
	const sys = "/redfish/v1/Systems/1"
	const reset = sys + "/Actions/ComputerSystem.Reset"
	tests := map[string]struct {
		method, path, user, body string
		want                     int
	}{
		"root needs no auth":          {"GET", "/redfish/v1/", "", "", http.StatusOK},
		"systems need auth":           {"GET", "/redfish/v1/Systems", "", "", http.StatusUnauthorized},
		"system with basic auth":      {"GET", sys, "root", "", http.StatusOK},
		"reset needs auth":            {"POST", reset, "", `{"ResetType":"ForceRestart"}`, http.StatusUnauthorized},
		"wrong method on system":      {"PUT", sys, "root", `{}`, http.StatusMethodNotAllowed},
		"wrong method on reset":       {"GET", reset, "root", "", http.StatusMethodNotAllowed},
		"unknown reset type":          {"POST", reset, "root", `{"ResetType":"Reboot"}`, http.StatusBadRequest},
		"no reset type":               {"POST", reset, "root", `{}`, http.StatusBadRequest},
		"unknown boot property":       {"PATCH", sys, "root", `{"Boot":{"BootNow":"Pxe"}}`, http.StatusBadRequest},
		"boot target not allowed":     {"PATCH", sys, "root", `{"Boot":{"BootSourceOverrideTarget":"Floppy"}}`, http.StatusBadRequest},
		"read-only property":          {"PATCH", sys, "root", `{"PowerState":"Off"}`, http.StatusBadRequest},
		"unknown path":                {"GET", "/redfish/v1/Chassis", "root", "", http.StatusNotFound},
		"restart of an on system":     {"POST", reset, "root", `{"ResetType":"ForceRestart"}`, http.StatusNoContent},
		"on when on is a conflict":    {"POST", reset, "root", `{"ResetType":"On"}`, http.StatusConflict},
		"wrong password":              {"GET", sys, "intruder", "", http.StatusUnauthorized},
		"login with a wrong password": {"POST", "/redfish/v1/SessionService/Sessions", "", `{"UserName":"root","Password":"nope"}`, http.StatusUnauthorized},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			pass := testPassword
			if tc.user == "intruder" {
				tc.user, pass = "root", "nope"
			}
			if got := raw(t, srv, tc.method, tc.path, tc.user, pass, tc.body); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPickReset(t *testing.T) {
	restart := []schemas.ResetType{"ForceRestart", "PowerCycle", "GracefulRestart"}
	tests := map[string]struct {
		allowed []schemas.ResetType
		want    schemas.ResetType
		wantErr bool
	}{
		"no list: the best":       {allowed: nil, want: "ForceRestart"},
		"all allowed":             {allowed: []schemas.ResetType{"On", "GracefulRestart", "PowerCycle", "ForceRestart"}, want: "ForceRestart"},
		"hard before polite":      {allowed: []schemas.ResetType{"GracefulRestart", "PowerCycle"}, want: "PowerCycle"},
		"polite as a last resort": {allowed: []schemas.ResetType{"On", "GracefulRestart"}, want: "GracefulRestart"},
		"none":                    {allowed: []schemas.ResetType{"On", "Nmi"}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := pickReset(restart, tc.allowed)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestRedfishState(t *testing.T) {
	tests := map[schemas.PowerState]State{
		"On": On, "PoweringOn": On, "Paused": On,
		"Off": Off, "PoweringOff": Off,
		"": Unknown, "Standby": Unknown,
	}
	for ps, want := range tests {
		got, err := redfishState(ps)
		if got != want || (err != nil) != (want == Unknown) {
			t.Errorf("%q: got %s, %v; want %s", ps, got, err, want)
		}
	}
}

func TestRedfishEndpoint(t *testing.T) {
	tests := map[string]struct {
		want    string
		wantErr bool
	}{
		"https://10.0.0.5":                  {want: "https://10.0.0.5"},
		"https://10.0.0.5/":                 {want: "https://10.0.0.5"},
		"https://10.0.0.5:8443/redfish/v1/": {want: "https://10.0.0.5:8443"},
		"http://[fd00::5]/redfish/v1":       {want: "http://[fd00::5]"},
		"https://proxy/bmc7/redfish/v1":     {want: "https://proxy/bmc7"},
		"10.0.0.5":                          {wantErr: true},
		"ftp://10.0.0.5":                    {wantErr: true},
		"https://":                          {wantErr: true},
		"https://u:p@10.0.0.5":              {wantErr: true},
		"https://10.0.0.5/#x":               {wantErr: true},
	}
	for addr, tc := range tests {
		t.Run(addr, func(t *testing.T) {
			got, err := redfishEndpoint(addr)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), ":p@") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}
