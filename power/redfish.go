package power

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"
)

// redfish drives a BMC's Redfish service with gofish. Each call connects,
// finds the ComputerSystem, acts and logs out.
type redfish struct {
	caller
	endpoint string // scheme://host[:port][/prefix], without /redfish/v1
	creds    Credentials
	client   *http.Client
}

func newRedfish(c Config) (*redfish, error) {
	endpoint, err := redfishEndpoint(c.Address)
	if err != nil {
		return nil, fmt.Errorf("bmc redfish: %w", err)
	}
	r := &redfish{caller: c.caller(endpoint), endpoint: endpoint, creds: c.Credentials}
	r.client = &http.Client{
		Transport: &http.Transport{
			// No Proxy: BMCs sit on a management network that a proxy from
			// the server's environment does not reach.
			DialContext:         (&net.Dialer{}).DialContext,
			IdleConnTimeout:     30 * time.Second,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.Insecure}, //nolint:gosec // the site config asked for it
			TLSHandshakeTimeout: r.timeout,
			ForceAttemptHTTP2:   true,
		},
		// The attempt's context bounds every request but gofish's logout,
		// which falls back to context.Background once that context ended.
		Timeout: r.timeout,
	}
	return r, nil
}

// redfishEndpoint checks a Redfish address and returns the endpoint gofish
// wants: the URL without /redfish/v1, which gofish appends.
func redfishEndpoint(addr string) (string, error) {
	if strings.Contains(addr, "@") {
		// Not echoed: it may hold a password.
		return "", fmt.Errorf("address holds credentials (user@host); name them in the site config's bmc.credentials instead")
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: not a URL", addr)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("address %q: want a URL like https://10.0.0.5", addr)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("address %q: want no query or fragment", addr)
	}
	p := strings.TrimSuffix(u.Path, "/")
	p = strings.TrimSuffix(p, "/redfish/v1")
	return u.Scheme + "://" + u.Host + strings.TrimSuffix(p, "/"), nil
}

// connect opens a client for one attempt. It logs in with a Redfish session
// and falls back to basic auth when the service has no session service.
func (d *redfish) connect(ctx context.Context) (*gofish.APIClient, error) {
	cfg := gofish.ClientConfig{
		Endpoint:          d.endpoint,
		Username:          d.creds.Username,
		Password:          d.creds.Password,
		HTTPClient:        d.client,
		NoModifyTransport: true,
		// One connection for the call's few requests, not one each; the
		// logout closes it.
		ReuseConnections: true,
	}
	c, err := gofish.ConnectContext(ctx, cfg)
	if err != nil && d.creds.Username != "" && noSessionService(err) {
		d.log.Debug("no redfish session service, using basic auth", "err", err)
		cfg.BasicAuth = true
		c, err = gofish.ConnectContext(ctx, cfg)
	}
	return c, err
}

// noSessionService reports whether a session login failed because the
// service has none: no Sessions link (gofish posts to an empty target) or no
// such resource.
func noSessionService(err error) bool {
	if strings.Contains(err.Error(), "no target provided") {
		return true
	}
	var e *schemas.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.HTTPReturnedStatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return true
	}
	return false
}

// do runs one call against the service's ComputerSystem: the only one, or
// the first of the collection.
func (d *redfish) do(ctx context.Context, op string, f func(*schemas.ComputerSystem) error) error {
	return d.call(ctx, op, func(ctx context.Context) error {
		c, err := d.connect(ctx)
		if err != nil {
			return classifyRedfish("connect", err)
		}
		defer c.Logout()
		systems, err := c.Service.Systems()
		if err != nil {
			return classifyRedfish("list systems", err)
		}
		if len(systems) == 0 {
			return errors.New("the service lists no ComputerSystem")
		}
		if len(systems) > 1 {
			d.log.Debug("redfish service lists several systems, using the first", "system", systems[0].ODataID)
		}
		return classifyRedfish(systems[0].ODataID, f(systems[0]))
	})
}

// classifyRedfish marks an error from gofish with its kind and makes its
// message short: gofish's own carries the whole response body.
func classifyRedfish(what string, err error) error {
	if err == nil {
		return nil
	}
	var ce *schemas.CollectionError
	if errors.As(err, &ce) {
		// The first failure of the strongest kind speaks for the collection.
		var worst error
		for _, e := range ce.Failures {
			c := classifyRedfish(what, e)
			if worst == nil || kindOf(c) > kindOf(worst) {
				worst = c
			}
		}
		if worst != nil {
			return worst
		}
	}
	var he *schemas.Error
	if errors.As(err, &he) && he.HTTPReturnedStatusCode != 0 {
		code := he.HTTPReturnedStatusCode
		msg := fmt.Errorf("%s: HTTP %d %s%s", what, code, http.StatusText(code), redfishMessage(he))
		switch {
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return classed(authFailed, msg)
		case code == http.StatusConflict || code == http.StatusTooManyRequests || code >= 500:
			return classed(busy, msg) // a transition in progress, or a busy BMC
		}
		return msg
	}
	var uae x509.UnknownAuthorityError
	var cve *tls.CertificateVerificationError
	var hne x509.HostnameError
	if errors.As(err, &uae) || errors.As(err, &cve) || errors.As(err, &hne) {
		return fmt.Errorf("%s: %w (a self-signed BMC certificate needs bmc.insecure: true)", what, err)
	}
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout(), errors.As(err, &oe),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return classed(noAnswer, fmt.Errorf("%s: %w", what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// redfishMessage returns the message of a Redfish error body, if any.
func redfishMessage(e *schemas.Error) string {
	for _, m := range e.ExtendedInfos {
		if m.Message != "" {
			return ": " + m.Message
		}
	}
	if e.Message != "" && !strings.HasPrefix(strings.TrimSpace(e.Message), "{") {
		return ": " + e.Message
	}
	return ""
}

// redfishState maps a ComputerSystem's PowerState: a system powering on or
// paused is on (a reset restarts it), one powering off is off.
func redfishState(p schemas.PowerState) (State, error) {
	switch p {
	case schemas.OnPowerState, schemas.PoweringOnPowerState, schemas.PausedPowerState:
		return On, nil
	case schemas.OffPowerState, schemas.PoweringOffPowerState:
		return Off, nil
	}
	return Unknown, fmt.Errorf("unknown PowerState %q", p)
}

// pickReset returns the first of want that the service allows. A service
// that lists no allowable values is assumed to take the first. Callers list
// the types best first: a restart prefers the hard ForceRestart, then
// PowerCycle, and only then GracefulRestart, which waits on an OS that a
// machine being rebuilt may not have.
func pickReset(want, allowed []schemas.ResetType) (schemas.ResetType, error) {
	if len(allowed) == 0 {
		return want[0], nil
	}
	for _, w := range want {
		if slices.Contains(allowed, w) {
			return w, nil
		}
	}
	return "", fmt.Errorf("the service allows none of the reset types %v (it allows %v)", want, allowed)
}

// reset posts the ComputerSystem.Reset action with the best allowed type.
func (d *redfish) reset(sys *schemas.ComputerSystem, want ...schemas.ResetType) error {
	allowed, err := sys.GetSupportedResetTypes()
	if err != nil {
		return fmt.Errorf("reset types: %w", err)
	}
	rt, err := pickReset(want, allowed)
	if err != nil {
		return err
	}
	if _, err := sys.Reset(rt); err != nil {
		return fmt.Errorf("reset %s: %w", rt, err)
	}
	d.log.Info("bmc accepted power command", "op", "reset "+string(rt))
	return nil
}

// Status implements Driver.
func (d *redfish) Status(ctx context.Context) (State, error) {
	var st State
	err := d.do(ctx, "power status", func(sys *schemas.ComputerSystem) error {
		var err error
		st, err = redfishState(sys.PowerState)
		return err
	})
	if err != nil {
		return Unknown, err
	}
	d.log.Debug("power status", "state", st)
	return st, nil
}

// On implements Driver.
func (d *redfish) On(ctx context.Context) error {
	return d.do(ctx, "power on", func(sys *schemas.ComputerSystem) error {
		if st, err := redfishState(sys.PowerState); err == nil && st == On {
			return nil // some services answer 409 to On when on
		}
		return d.reset(sys, schemas.OnResetType, schemas.ForceOnResetType, schemas.PushPowerButtonResetType)
	})
}

// Off implements Driver.
func (d *redfish) Off(ctx context.Context) error {
	return d.do(ctx, "power off", func(sys *schemas.ComputerSystem) error {
		if st, err := redfishState(sys.PowerState); err == nil && st == Off {
			return nil
		}
		return d.reset(sys, schemas.ForceOffResetType)
	})
}

// Cycle implements Driver.
func (d *redfish) Cycle(ctx context.Context) error {
	return d.do(ctx, "power cycle", func(sys *schemas.ComputerSystem) error {
		st, err := redfishState(sys.PowerState)
		if err != nil {
			return err
		}
		if st == Off {
			return d.reset(sys, schemas.OnResetType, schemas.ForceOnResetType, schemas.PushPowerButtonResetType)
		}
		return d.reset(sys, schemas.ForceRestartResetType, schemas.PowerCycleResetType, schemas.GracefulRestartResetType)
	})
}

// PXEOnce implements Driver: Boot.BootSourceOverrideTarget Pxe with
// BootSourceOverrideEnabled Once, which the service resets to Disabled after
// the next boot. The override mode (UEFI or Legacy) stays as the system has
// it.
func (d *redfish) PXEOnce(ctx context.Context) error {
	return d.do(ctx, "boot override pxe", func(sys *schemas.ComputerSystem) error {
		if t := sys.Boot.AllowableBootSourceOverrideTargetValues; len(t) > 0 && !slices.Contains(t, schemas.PxeBootSource) {
			return fmt.Errorf("the system allows no Pxe boot override (it allows %v)", t)
		}
		err := sys.SetBoot(&schemas.Boot{
			BootSourceOverrideTarget:  schemas.PxeBootSource,
			BootSourceOverrideEnabled: schemas.OnceBootSourceOverrideEnabled,
		})
		if err != nil {
			return fmt.Errorf("patch boot override: %w", err)
		}
		d.log.Info("bmc set next boot to network", "op", "boot override pxe once")
		return nil
	})
}
