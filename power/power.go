package power

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Driver controls one machine's power through its BMC.
type Driver interface {
	// Status reports whether the machine is on or off.
	Status(ctx context.Context) (State, error)
	// On powers the machine on; it does nothing to a machine that is on.
	On(ctx context.Context) error
	// Off cuts the machine's power at once, without asking its OS to shut
	// down.
	Off(ctx context.Context) error
	// Cycle restarts the machine from its firmware: a hard reset when it is
	// on, power on when it is off. It returns once the BMC accepted the
	// command, not when the machine has booted.
	Cycle(ctx context.Context) error
	// PXEOnce makes the machine's next boot, and only that one, a network
	// boot. Restart the machine right after (see [PXEReboot]): IPMI BMCs drop
	// the request when no restart follows within 60 seconds.
	PXEOnce(ctx context.Context) error
}

// State is a machine's power state as its BMC reports it.
type State int

// The power states. Unknown is only returned with an error.
const (
	Unknown State = iota
	Off
	On
)

func (s State) String() string {
	switch s {
	case On:
		return "on"
	case Off:
		return "off"
	}
	return "unknown"
}

// ErrUnreachable is matched (errors.Is) by the error of a call that got no
// answer from the BMC in any of its attempts.
var ErrUnreachable = errors.New("bmc unreachable")

// ErrAuth is matched by the error of a call whose credentials the BMC
// rejected: wrong user or password, or a user without the privilege to
// control power. Such calls are not retried.
var ErrAuth = errors.New("bmc rejected the credentials")

// PXEReboot is what a rebuild does to a machine: make its next boot a network
// boot, then restart it (Cycle) when it is on or power it on when it is off,
// so that either way it boots once from the network into the active config
// version.
func PXEReboot(ctx context.Context, d Driver) error {
	if err := d.PXEOnce(ctx); err != nil {
		return fmt.Errorf("pxe reboot: set next boot to pxe: %w", err)
	}
	st, err := d.Status(ctx)
	if err != nil {
		return fmt.Errorf("pxe reboot: %w", err)
	}
	// An off machine is powered on rather than reset: a reset of an off
	// chassis does nothing on many BMCs.
	restart, how := d.Cycle, "cycle"
	if st == Off {
		restart, how = d.On, "power on"
	}
	if err := restart(ctx); err != nil {
		return fmt.Errorf("pxe reboot: %s: %w", how, err)
	}
	return nil
}

// Credentials are a BMC's user and password. Printing or logging them shows
// the user only.
type Credentials struct {
	Username string
	Password string
}

const redacted = "<redacted>"

// String shows the user and whether a password is set, never the password.
func (c Credentials) String() string {
	if c.Password == "" {
		return c.Username
	}
	return c.Username + ":" + redacted
}

// GoString keeps %#v from printing the password.
func (c Credentials) GoString() string {
	return fmt.Sprintf("power.Credentials{Username:%q, Password:%q}", c.Username, redactedIfSet(c.Password))
}

// LogValue implements slog.LogValuer so that logging Credentials (or a struct
// holding them) never writes the password.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", c.Username), slog.String("password", redactedIfSet(c.Password)))
}

// MarshalJSON writes the password redacted too, so that Credentials nested
// in a logged or served struct (which slog and encoding/json print field by
// field) stay safe. Credentials are read from the secrets file, never
// written.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct{ Username, Password string }{c.Username, redactedIfSet(c.Password)})
}

func redactedIfSet(pw string) string {
	if pw == "" {
		return ""
	}
	return redacted
}

// The driver names a site config's bmc.driver may hold.
const (
	DriverIPMI    = "ipmi"
	DriverRedfish = "redfish"
	DriverQMP     = "qmp"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout  = 20 * time.Second
	DefaultAttempts = 3
	DefaultBackoff  = time.Second
	DefaultIPMIPort = "623"
)

// Config says how to reach one machine's BMC. Driver, Address, Credentials
// and Insecure come from the machine's site config (and the server's secrets
// for the password); the rest tune the calls and have useful zero values.
type Config struct {
	// Driver is ipmi, redfish or qmp.
	Driver string
	// Address is host[:port] for ipmi (port 623 by default), the service URL
	// for redfish (https://10.0.0.5), the QMP unix socket path for qmp.
	Address     string
	Credentials Credentials
	// Insecure accepts a Redfish service's self-signed TLS certificate.
	Insecure bool
	// UEFI makes an IPMI PXEOnce ask for an EFI network boot (ipmitool's
	// options=efiboot) instead of a legacy BIOS one. Set it from the firmware
	// the machine's DHCP requests showed (option 93): IPMI has no way to ask.
	UEFI bool

	// Timeout bounds each attempt of a call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Attempts is how many times a call is tried when the BMC does not
	// answer or is busy; 0 means DefaultAttempts.
	Attempts int
	// Backoff is the pause after the first failed attempt, doubled after each
	// further one; 0 means DefaultBackoff.
	Backoff time.Duration

	// IPMIInterface is ipmitool's interface: lanplus (IPMI 2.0, the default)
	// or lan (IPMI 1.5, for old BMCs).
	IPMIInterface string
	// IPMITool is the ipmitool binary; empty means "ipmitool" from PATH.
	IPMITool string

	// Log receives the power actions (Info) and retries (Warn), with the keys
	// driver and bmc added; give it the machine's site and mac (Log.With).
	// nil discards.
	Log *slog.Logger
}

// New returns the driver the config names. It does no I/O, only checks the
// config, so it also serves to validate a site's BMC entries.
func New(c Config) (Driver, error) {
	if c.Timeout < 0 || c.Attempts < 0 || c.Backoff < 0 {
		return nil, fmt.Errorf("bmc %s: timeout, attempts and backoff must not be negative", c.Driver)
	}
	if c.Address == "" {
		return nil, fmt.Errorf("bmc %s: no address", c.Driver)
	}
	switch c.Driver {
	case DriverIPMI:
		return newIPMI(c)
	case DriverRedfish:
		return newRedfish(c)
	case DriverQMP:
		return newQMP(c)
	}
	return nil, fmt.Errorf("bmc driver %q: unknown (want %s, %s or %s)", c.Driver, DriverIPMI, DriverRedfish, DriverQMP)
}

// caller returns the retrying call runner for a driver, with c's defaults
// applied.
func (c Config) caller(addr string) caller {
	r := caller{
		driver:   c.Driver,
		addr:     addr,
		timeout:  c.Timeout,
		attempts: c.Attempts,
		backoff:  c.Backoff,
		log:      c.Log,
	}
	if r.timeout == 0 {
		r.timeout = DefaultTimeout
	}
	if r.attempts == 0 {
		r.attempts = DefaultAttempts
	}
	if r.backoff == 0 {
		r.backoff = DefaultBackoff
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("driver", c.Driver, "bmc", addr)
	return r
}
