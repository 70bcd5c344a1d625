package power

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestIPMIAgainstSim drives ipmi_sim through each operation, over IPMI 2.0
// and 1.5, and checks what the simulated chassis was asked to do.
func TestIPMIAgainstSim(t *testing.T) {
	sim := startIPMISim(t)
	ctx := context.Background()
	// Ordered: each step starts from the power state the previous one left.
	steps := []struct {
		name     string
		do       func(Driver, context.Context) error
		wantSets []string
		want     State // power status after the step
	}{
		{"off to start", Driver.Off, []string{"set power 0"}, Off},
		{"on", Driver.On, []string{"set power 1"}, On},
		{"cycle when on resets", Driver.Cycle, []string{"set reset 1"}, On},
		{"pxe once", Driver.PXEOnce, []string{"set boot pxe"}, On},
		{"pxe reboot when on", pxeReboot, []string{"set boot pxe", "set reset 1"}, On},
		{"off", Driver.Off, []string{"set power 0"}, Off},
		{"pxe reboot when off", pxeReboot, []string{"set boot pxe", "set power 1"}, On},
		{"off again", Driver.Off, []string{"set power 0"}, Off},
		{"cycle when off powers on", Driver.Cycle, []string{"set power 1"}, On},
	}
	for _, iface := range []string{"lanplus", "lan"} {
		d := sim.driver(t, Config{IPMIInterface: iface})
		for _, st := range steps {
			t.Run(iface+"/"+st.name, func(t *testing.T) {
				if err := st.do(d, ctx); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(st.wantSets, sim.sets(t)); diff != "" {
					t.Errorf("chassis sets (-want +got):\n%s", diff)
				}
				got, err := d.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got != st.want {
					t.Errorf("status: got %s, want %s", got, st.want)
				}
			})
		}
	}
}

// TestIPMIUEFI: the EFI boot option is accepted by a real BMC stack.
func TestIPMIUEFI(t *testing.T) {
	sim := startIPMISim(t)
	if err := sim.driver(t, Config{UEFI: true}).PXEOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"set boot pxe"}, sim.sets(t)); diff != "" {
		t.Errorf("chassis sets (-want +got):\n%s", diff)
	}
}

func TestIPMIAuth(t *testing.T) {
	sim := startIPMISim(t)
	tests := map[string]Credentials{
		"wrong password": {Username: "admin", Password: "Wrong-" + testPassword[:8]},
		"unknown user":   {Username: "nobody", Password: testPassword},
	}
	for name, creds := range tests {
		t.Run(name, func(t *testing.T) {
			d := sim.driver(t, Config{Credentials: creds, Attempts: 3, Backoff: time.Second})
			start := time.Now()
			_, err := d.Status(context.Background())
			if !errors.Is(err, ErrAuth) || errors.Is(err, ErrUnreachable) {
				t.Fatalf("got %v, want ErrAuth", hideErr(err))
			}
			if time.Since(start) > time.Second {
				t.Errorf("took %s: an auth failure must not be retried", time.Since(start))
			}
			msg := err.Error()
			t.Log(hidePassword(msg))
			if strings.Contains(msg, creds.Password) || strings.Contains(msg, testPassword) {
				t.Errorf("error shows a password: %s", strings.ReplaceAll(hidePassword(msg), creds.Password, "<PASSWORD>"))
			}
			want := "ipmi " + sim.addr + ": power status: bmc rejected the credentials: ipmitool chassis power status"
			if !strings.HasPrefix(msg, want) || !strings.Contains(msg, `(user "`+creds.Username+`")`) {
				t.Errorf("got %q, want it to start %q and name the user", hidePassword(msg), want)
			}
		})
	}
}

func TestIPMIUnreachable(t *testing.T) {
	need(t, "ipmitool", "ipmitool")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeUDPPort(t)))
	d, err := New(Config{Driver: DriverIPMI, Address: addr, Credentials: Credentials{"admin", testPassword},
		Timeout: 500 * time.Millisecond, Attempts: 2, Backoff: 10 * time.Millisecond, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = d.On(context.Background())
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", hideErr(err))
	}
	t.Log(hideErr(err))
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %s for 2 attempts of 500ms", took)
	}
	want := "ipmi " + addr + ": power on: no answer after 2 attempts (500ms each): "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got  %q\nwant %q...", hideErr(err), want)
	}
}

// TestIPMIPasswordNotOnCommandLine runs ipmitool through a shim that records
// its own /proc/<pid>/cmdline, which is what ps shows to every user, then
// execs the real ipmitool: the call works, so the password got through, and
// the command line does not hold it.
func TestIPMIPasswordNotOnCommandLine(t *testing.T) {
	sim := startIPMISim(t)
	dir := t.TempDir()
	shim := filepath.Join(dir, "ipmitool")
	script := "#!/bin/sh\ntr '\\0' ' ' < /proc/$$/cmdline >> " + filepath.Join(dir, "cmdline") + "\nexec ipmitool \"$@\"\n"
	if err := os.WriteFile(shim, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	d := sim.driver(t, Config{IPMITool: shim})
	if _, err := d.Status(context.Background()); err != nil {
		t.Fatal(hideErr(err))
	}
	b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	cmdline := string(b)
	if strings.Contains(cmdline, testPassword) {
		t.Errorf("password on ipmitool's command line: %s", hidePassword(cmdline))
	}
	if !strings.Contains(cmdline, " -E ") || !strings.Contains(cmdline, " -U admin ") {
		t.Errorf("command line %q: want -U admin -E", cmdline)
	}
}

func TestIPMIToolMissing(t *testing.T) {
	d, err := New(Config{Driver: DriverIPMI, Address: "127.0.0.1", IPMITool: "/nonexistent/ipmitool", Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "install the Debian package ipmitool") || errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want an error naming the Debian package", err)
	}
}

func TestIPMIToolArgs(t *testing.T) {
	tests := map[string]struct {
		iface, user string
		password    bool
		command     []string
		want        string
	}{
		"lanplus": {"lanplus", "admin", true, []string{"chassis", "power", "status"},
			"-I lanplus -C 3 -L OPERATOR -H 10.0.0.5 -p 623 -U admin -E -v chassis power status"},
		"lan": {"lan", "admin", true, []string{"chassis", "power", "on"},
			"-I lan -L OPERATOR -H 10.0.0.5 -p 623 -U admin -E -v chassis power on"},
		"anonymous, no password": {"lanplus", "", false, []string{"chassis", "bootdev", "pxe", "options=efiboot"},
			"-I lanplus -C 3 -L OPERATOR -H 10.0.0.5 -p 623 -v chassis bootdev pxe options=efiboot"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := strings.Join(ipmitoolArgs(tc.iface, "10.0.0.5", "623", tc.user, tc.password, tc.command...), " ")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	env := strings.Join(ipmitoolEnv(testPassword), " ")
	if !strings.Contains(env, "IPMI_PASSWORD=") || strings.Contains(env, "IPMITOOL_PASSWORD") || !strings.Contains(env, "LC_ALL=C") {
		t.Errorf("environment %q: want IPMI_PASSWORD, LC_ALL=C and no IPMITOOL_PASSWORD", hidePassword(env))
	}
}

func TestParseIPMIStatus(t *testing.T) {
	tests := map[string]struct {
		out     string
		want    State
		wantErr bool
	}{
		"on":          {out: "Chassis Power is on\n", want: On},
		"off":         {out: "Chassis Power is off\n", want: Off},
		"capitalised": {out: "Chassis Power is On\n", wantErr: true},
		"extra":       {out: "Chassis Power is on or off\n", wantErr: true},
		"empty":       {out: "", wantErr: true},
		"other":       {out: "Chassis Power Control: Up/On\n", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseIPMIStatus(tc.out)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %s, %v; want %s, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestClassifyIPMI uses ipmitool 1.8.19's standard error (with -v) as seen
// against ipmi_sim and in ipmitool's sources.
func TestClassifyIPMI(t *testing.T) {
	tests := map[string]struct {
		stderr string
		want   kind
	}{
		"lanplus wrong password": {"Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n", authFailed},
		"lanplus unknown user":   {"RAKP 2 message indicates an error : unauthorized name\nError: Unable to establish IPMI v2 / RMCP+ session\n", authFailed},
		"lanplus low privilege":  {"Set Session Privilege Level to OPERATOR failed\nError: Unable to establish IPMI v2 / RMCP+ session\n", authFailed},
		"lanplus no answer":      {"Get Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\nError: Unable to establish IPMI v2 / RMCP+ session\n", noAnswer},
		"lanplus no sessions":    {"RAKP 2 message indicates an error : insufficient resources for session\nError: Unable to establish IPMI v2 / RMCP+ session\n", busy},
		"lanplus no cipher 3":    {"Error in open session response message : no matching cipher suite\nError: Unable to establish IPMI v2 / RMCP+ session\n", permanent},
		"lan wrong password":     {"Activate Session command failed\nError: Unable to establish LAN session\nError: Unable to establish IPMI v1.5 / RMCP session\n", authFailed},
		"lan unknown user":       {"Invalid user name\nError: Unable to establish LAN session\n", authFailed},
		"lan no answer":          {"Get Auth Capabilities command failed\nError: Unable to establish LAN session\nError: Unable to establish IPMI v1.5 / RMCP session\n", noAnswer},
		"command lost":           {"Unable to set Chassis Power Control to Reset\n", noAnswer},
		"command refused":        {"Set Chassis Power Control to Up/On failed: Command not supported in present state\n", permanent},
		"node busy":              {"Set Chassis Power Control to Reset failed: Node busy\n", busy},
		"unresolvable host":      {"Address lookup for bmc-9.example failed\nError: Unable to establish IPMI v2 / RMCP+ session\n", noAnswer},
		"nothing said":           {"", permanent},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := classifyIPMI(tc.stderr); got != tc.want {
				t.Errorf("got kind %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSplitIPMIAddress(t *testing.T) {
	tests := map[string]struct {
		host, port string
		wantErr    bool
	}{
		"10.0.0.5":         {host: "10.0.0.5", port: "623"},
		"10.0.0.5:1623":    {host: "10.0.0.5", port: "1623"},
		"bmc-1.example":    {host: "bmc-1.example", port: "623"},
		"bmc-1:623":        {host: "bmc-1", port: "623"},
		"fd00::5":          {host: "fd00::5", port: "623"},
		"[fd00::5]:624":    {host: "fd00::5", port: "624"},
		"10.0.0.5:":        {wantErr: true},
		"10.0.0.5:http":    {wantErr: true},
		"10.0.0.5:0":       {wantErr: true},
		":623":             {wantErr: true},
		"fd00::5::1:2:3:4": {wantErr: true},
	}
	for addr, tc := range tests {
		t.Run(addr, func(t *testing.T) {
			host, port, err := splitIPMIAddress(addr)
			if (err != nil) != tc.wantErr || host != tc.host || port != tc.port {
				t.Errorf("got %q %q %v; want %q %q error %v", host, port, err, tc.host, tc.port, tc.wantErr)
			}
		})
	}
}
