package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ipmi drives a BMC over IPMI-over-LAN with ipmitool, one process per
// command.
type ipmi struct {
	caller
	tool  string
	iface string // lanplus or lan
	host  string
	port  string
	creds Credentials
	uefi  bool
}

func newIPMI(c Config) (*ipmi, error) {
	if strings.Contains(c.Address, "@") {
		// Not echoed: it may hold a password.
		return nil, fmt.Errorf("bmc ipmi: address holds credentials (user@host); name them in the site config's bmc.credentials instead")
	}
	host, port, err := splitIPMIAddress(c.Address)
	if err != nil {
		return nil, fmt.Errorf("bmc ipmi %q: %w", c.Address, err)
	}
	iface := c.IPMIInterface
	switch iface {
	case "":
		iface = "lanplus"
	case "lanplus", "lan":
	default:
		return nil, fmt.Errorf("bmc ipmi %s: interface %q: want lanplus or lan", c.Address, iface)
	}
	tool := c.IPMITool
	if tool == "" {
		tool = "ipmitool"
	}
	return &ipmi{
		caller: c.caller(net.JoinHostPort(host, port)),
		tool:   tool,
		iface:  iface,
		host:   host,
		port:   port,
		creds:  c.Credentials,
		uefi:   c.UEFI,
	}, nil
}

// splitIPMIAddress splits host[:port] (an IPv6 host in brackets when a port
// follows), with port 623 (RMCP, IPMI spec 13.1) by default.
func splitIPMIAddress(addr string) (host, port string, err error) {
	if a, err := netip.ParseAddr(addr); err == nil {
		return a.String(), DefaultIPMIPort, nil // bare IPv6 has colons but no port
	}
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		if strings.Contains(addr, ":") {
			return "", "", fmt.Errorf("want host or host:port")
		}
		host, port = addr, DefaultIPMIPort
	}
	if host == "" {
		return "", "", fmt.Errorf("no host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("port %q: want 1-65535", port)
	}
	return host, port, nil
}

// ipmitoolArgs is the command line of one ipmitool call. The password is not
// in it: -E makes ipmitool read it from IPMI_PASSWORD in its environment,
// which, unlike the command line, only its owner can read in /proc. -v makes
// ipmitool say why a session failed (e.g. "RAKP 2 HMAC is invalid"), which
// is how a wrong password is told from a silent BMC.
func ipmitoolArgs(iface, host, port, user string, password bool, command ...string) []string {
	args := []string{"-I", iface}
	if iface == "lanplus" {
		args = append(args, "-C", "3")
	}
	args = append(args, "-L", "OPERATOR", "-H", host, "-p", port)
	if user != "" {
		args = append(args, "-U", user)
	}
	if password {
		args = append(args, "-E")
	}
	args = append(args, "-v")
	return append(args, command...)
}

// ipmitoolEnv is the child's whole environment: no inherited
// IPMITOOL_PASSWORD (which would win over IPMI_PASSWORD), and the C locale
// for the output parsed here.
func ipmitoolEnv(password string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	if password != "" {
		env = append(env, "IPMI_PASSWORD="+password)
	}
	return env
}

// run runs one ipmitool command and returns its standard output, or an
// error classified from what ipmitool wrote to standard error.
func (d *ipmi) run(ctx context.Context, command ...string) (string, error) {
	args := ipmitoolArgs(d.iface, d.host, d.port, d.creds.Username, d.creds.Password != "", command...)
	cmd := exec.CommandContext(ctx, d.tool, args...)
	cmd.Env = ipmitoolEnv(d.creds.Password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	d.log.Debug("ipmitool", "args", args)
	err := cmd.Run()
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s not found: install the Debian package ipmitool: %w", d.tool, err)
	}
	if err != nil {
		msg := ipmitoolMessage(stderr.String())
		if ctx.Err() != nil {
			return "", classed(noAnswer, fmt.Errorf("ipmitool stopped at the deadline: %s", msg))
		}
		k := classifyIPMI(stderr.String())
		if k == authFailed && d.creds.Username != "" {
			msg += fmt.Sprintf(" (user %q)", d.creds.Username)
		}
		return "", classed(k, fmt.Errorf("ipmitool %s: %v: %s", strings.Join(command, " "), err, msg))
	}
	return stdout.String(), nil
}

// ipmitoolMessage condenses ipmitool's standard error into one line for an
// error message, without -v's chatter.
func ipmitoolMessage(stderr string) string {
	var keep []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(strings.TrimLeft(l, "> \t"))
		if l == "" || strings.HasPrefix(l, "Loading IANA PEN Registry") || strings.HasPrefix(l, "Running Get") {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) == 0 {
		return "no output"
	}
	return strings.Join(keep, "; ")
}

// ipmiPatterns tell the kind of an ipmitool failure from its standard error
// (with -v), checked in order: the specific causes come before the generic
// "Unable to establish ... session" that follows all of them. The messages
// are ipmitool 1.8's (src/plugins/lan/lan.c, lanplus/lanplus.c).
var ipmiPatterns = []struct {
	substr string
	kind   kind
}{
	// IPMI 2.0 (lanplus) session setup.
	{"RAKP 2 HMAC is invalid", authFailed},         // wrong password
	{"unauthorized name", authFailed},              // unknown user
	{"unauthorized role or privilege", authFailed}, // user below OPERATOR
	{"invalid integrity check value", authFailed},  // RAKP 4: BMC disagrees on the password
	{"Set Session Privilege Level", authFailed},    // user below OPERATOR
	{"insufficient resources for session", busy},   // RAKP 2: no free session
	{"Error in open session response", permanent},  // e.g. no cipher suite 3: try lan
	{"does not support IPMI v2", permanent},        // an IPMI 1.5 BMC: use lan
	{"no response from RAKP", noAnswer},            // answered once, then went quiet
	{"Get Channel Authentication Capabilities", noAnswer},
	{"Get Auth Capabilities", noAnswer}, // the first packet got no answer (lan and lanplus)
	// IPMI 1.5 (lan) session setup.
	{"Invalid user name", authFailed},
	{"NULL user name not enabled", authFailed},
	// A 1.5 BMC drops an Activate Session with a bad auth code without a
	// word: after a Get Session Challenge that was answered, that silence
	// means a wrong password.
	{"Activate Session command failed", authFailed},
	{"Insufficient privilege level", authFailed},
	{"Requested privilege level exceeds limit", authFailed},
	{"No session slot available", busy},
	{"No slot available", busy},
	// Commands inside a session.
	{"Node busy", busy},
	{"Out of space", busy},
	{"Unable to set Chassis Power Control", noAnswer}, // no response to the command
	{"Unable to get Chassis Power Status", noAnswer},
	{"Address lookup for", noAnswer},
	{"Unable to send IPMI presence ping", noAnswer},
	{"Unable to establish", noAnswer},
}

// classifyIPMI returns the kind of a failed ipmitool call from its standard
// error.
func classifyIPMI(stderr string) kind {
	for _, p := range ipmiPatterns {
		if strings.Contains(stderr, p.substr) {
			return p.kind
		}
	}
	return permanent
}

// parseIPMIStatus reads `chassis power status` output, which is exactly
// "Chassis Power is on" or "Chassis Power is off" (ipmitool's
// ipmi_chassis_print_power_status).
func parseIPMIStatus(out string) (State, error) {
	switch strings.TrimSpace(out) {
	case "Chassis Power is on":
		return On, nil
	case "Chassis Power is off":
		return Off, nil
	}
	return Unknown, fmt.Errorf("ipmitool chassis power status: unexpected output %q", out)
}

// expect checks the one-line answer of an ipmitool command.
func expect(out, want string) error {
	if strings.TrimSpace(out) != want {
		return fmt.Errorf("ipmitool: got %q, want %q", strings.TrimSpace(out), want)
	}
	return nil
}

// Status implements Driver.
func (d *ipmi) Status(ctx context.Context) (State, error) {
	var st State
	err := d.call(ctx, "power status", func(ctx context.Context) error {
		out, err := d.run(ctx, "chassis", "power", "status")
		if err != nil {
			return err
		}
		st, err = parseIPMIStatus(out)
		return err
	})
	if err != nil {
		return Unknown, err
	}
	d.log.Debug("power status", "state", st)
	return st, nil
}

// power sends `chassis power <verb>` and checks ipmitool's answer.
func (d *ipmi) power(ctx context.Context, verb, answer string) error {
	err := d.call(ctx, "power "+verb, func(ctx context.Context) error {
		out, err := d.run(ctx, "chassis", "power", verb)
		if err != nil {
			return err
		}
		return expect(out, "Chassis Power Control: "+answer)
	})
	if err == nil {
		d.log.Info("bmc accepted power command", "op", "power "+verb)
	}
	return err
}

// On implements Driver. A BMC ignores power on for a chassis that is on.
func (d *ipmi) On(ctx context.Context) error { return d.power(ctx, "on", "Up/On") }

// Off implements Driver: `chassis power off` is the hard off (soft is ACPI).
func (d *ipmi) Off(ctx context.Context) error { return d.power(ctx, "off", "Down/Off") }

// Cycle implements Driver with `chassis power reset` when on: a reset
// restarts through the firmware like a power cycle, without the cycle's
// off-time, and `power cycle` fails on many BMCs when the chassis is off.
func (d *ipmi) Cycle(ctx context.Context) error {
	st, err := d.Status(ctx)
	if err != nil {
		return err
	}
	if st == Off {
		return d.On(ctx)
	}
	return d.power(ctx, "reset", "Reset")
}

// PXEOnce implements Driver with `chassis bootdev pxe`: without ipmitool's
// "persistent" option the boot flags apply to the next boot only (IPMI 2.0
// spec, Set System Boot Options parameter 5).
func (d *ipmi) PXEOnce(ctx context.Context) error {
	command := []string{"chassis", "bootdev", "pxe"}
	if d.uefi {
		command = append(command, "options=efiboot")
	}
	err := d.call(ctx, "bootdev pxe", func(ctx context.Context) error {
		out, err := d.run(ctx, command...)
		if err != nil {
			return err
		}
		return expect(out, "Set Boot Device to pxe")
	})
	if err == nil {
		d.log.Info("bmc set next boot to network", "op", "bootdev pxe", "uefi", d.uefi)
	}
	return err
}
