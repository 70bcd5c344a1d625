package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/undercloud/undercloud/inventory"
)

// Error kinds. Handlers, and the Rebuilds engine, return errors wrapping
// one of these (the inventory's ErrNotFound and ErrConflict count as ours);
// status maps them to HTTP statuses, and the error's text is what the
// operator reads, so it must name the problem.
var (
	// ErrBadRequest: the request itself is wrong (an unknown filter value,
	// an SQL statement the query page refuses).
	ErrBadRequest = errors.New("bad request")
	// ErrUnsupportedMedia: a request body of a type the endpoint does not
	// read (the API reads JSON); the message names the type expected.
	ErrUnsupportedMedia = errors.New("unsupported media type")
	// ErrNotFound: no such site, machine, rollout.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request contradicts what is going on (a rollout
	// already running, a machine already rebuilding).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: this server cannot do it now, or at all.
	ErrUnavailable = errors.New("unavailable")
	// ErrTooMany: too many such requests are running: try again shortly.
	ErrTooMany = errors.New("too many requests")
	// errUnauthenticated: no token or session, or an unknown one.
	errUnauthenticated = errors.New("unauthenticated")
	// errForbidden: a known identity without the right (role, CSRF).
	errForbidden = errors.New("forbidden")
)

// status is the one place that maps error kinds to HTTP statuses.
func status(err error) int {
	var he *echo.HTTPError
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnsupportedMedia):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, errUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotFound), errors.Is(err, inventory.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict), errors.Is(err, inventory.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrUnavailable), errors.Is(err, inventory.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrTooMany):
		return http.StatusTooManyRequests
	case errors.As(err, &he):
		// The router's own: no route, wrong method, body too large.
		return he.Code
	case errors.Is(err, context.Canceled):
		return 499 // the client went away; nobody reads the answer
	}
	return http.StatusInternalServerError
}

// message is the text shown for err: its own for the router's errors,
// which otherwise read "code=404, message=Not Found".
func message(err error) string {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if m, ok := he.Message.(string); ok && m != "" {
			return strings.ToLower(m)
		}
		return strings.ToLower(http.StatusText(he.Code))
	}
	return err.Error()
}

// kindf returns an error of kind with a message made of format and args;
// the kind does not show in the message.
func kindf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// kindError is an error of a kind whose text is only its message.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// errNoRebuilds is the answer of every rebuild and rollout endpoint when
// this server runs without the engine.
var errNoRebuilds = kindf(ErrUnavailable, "rebuilds are not available on this server")

// handleError is echo's error handler: a JSON {"error": ...} under /api/, an
// error page elsewhere. Server errors are logged; the operator still reads
// what went wrong.
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := status(err), message(err)
	if code >= 500 {
		s.log.Error("web request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	if code == 499 {
		return
	}
	if code == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="undercloud"`)
	}
	var werr error
	if isAPI(c.Request()) {
		werr = c.JSON(code, map[string]string{"error": msg})
	} else {
		werr = s.renderError(c, code, msg)
	}
	if werr != nil {
		s.log.Debug("write error response", "err", werr)
	}
}

// isAPI reports whether r is for the JSON API, which answers errors in JSON.
func isAPI(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/api/")
}
