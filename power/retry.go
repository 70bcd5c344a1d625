package power

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// kind says what a failed attempt means for the next one.
type kind int

const (
	// permanent failures are definite answers: another attempt would get
	// the same one.
	permanent kind = iota
	// noAnswer: nothing answered in time, or the connection was refused.
	// Retried; when every attempt fails so, the call fails with
	// ErrUnreachable.
	noAnswer
	// busy: the BMC answered that it cannot serve now (no free session, 503).
	// Retried.
	busy
	// authFailed: the BMC rejected the credentials. Never retried, as
	// repeated failures can lock the BMC account.
	authFailed
)

// attemptError is a failed attempt with its kind; drivers classify what
// their tool or library returned into one.
type attemptError struct {
	kind kind
	err  error
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

// classed returns err marked with kind k (nil stays nil).
func classed(k kind, err error) error {
	if err == nil {
		return nil
	}
	if k == authFailed && !errors.Is(err, ErrAuth) {
		err = fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return &attemptError{kind: k, err: err}
}

// kindOf returns the kind an error was marked with; unmarked errors are
// permanent.
func kindOf(err error) kind {
	var ae *attemptError
	if errors.As(err, &ae) {
		return ae.kind
	}
	return permanent
}

// unreachableError is the failure of a call that got no answer in any
// attempt.
type unreachableError struct {
	driver, addr, op string
	attempts         int
	timeout          time.Duration
	last             error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("%s %s: %s: no answer after %d attempts (%s each): %v",
		e.driver, e.addr, e.op, e.attempts, e.timeout, e.last)
}

func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }
func (e *unreachableError) Unwrap() error        { return e.last }

// caller runs a driver's calls: each attempt under its own timeout, retries
// with a doubling pause for the kinds worth retrying, errors that name the
// driver, the BMC's address and the operation.
type caller struct {
	driver   string
	addr     string // as shown in errors and logs: never holds credentials
	timeout  time.Duration
	attempts int
	backoff  time.Duration
	log      *slog.Logger
}

// call runs attempt until it succeeds, fails for good or the attempts are
// spent. attempt gets a context bounded by the per-attempt timeout; it may
// classify its errors with classed, and a failure after its context expired
// counts as no answer.
func (c *caller) call(ctx context.Context, op string, attempt func(context.Context) error) error {
	pause := c.backoff
	var last error
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, c.timeout)
		err := attempt(actx)
		timedOut := actx.Err() != nil
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %s: %w (attempt %d: %v)", c.driver, c.addr, op, ctx.Err(), n, err)
		}
		k := kindOf(err)
		if timedOut && k == permanent {
			k, err = noAnswer, fmt.Errorf("no answer within %s: %w", c.timeout, err)
		}
		last = err
		switch {
		case k == permanent || k == authFailed:
			return fmt.Errorf("%s %s: %s: %w", c.driver, c.addr, op, err)
		case n >= c.attempts && k == noAnswer:
			return &unreachableError{driver: c.driver, addr: c.addr, op: op, attempts: n, timeout: c.timeout, last: last}
		case n >= c.attempts:
			return fmt.Errorf("%s %s: %s: still failing after %d attempts: %w", c.driver, c.addr, op, n, last)
		}
		c.log.Warn("bmc call failed, retrying", "op", op, "attempt", n, "pause", pause, "err", err)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s %s: %s: %w (attempt %d: %v)", c.driver, c.addr, op, ctx.Err(), n, last)
		case <-t.C:
		}
		pause *= 2
	}
}
