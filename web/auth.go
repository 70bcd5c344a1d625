package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// Role is what an API token, and the sessions made from it, may do.
type Role string

// The roles: a viewer reads everything, an operator may also change things.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
)

// allows reports whether r includes the rights of need.
func (r Role) allows(need Role) bool {
	return r == RoleOperator || (r == RoleViewer && need == RoleViewer)
}

// Token is an API token from the server's secrets file. Its String,
// GoString, LogValue and JSON forms leave the secret out, so printing or
// logging a Token never shows it.
type Token struct {
	Name   string // who holds it: shown in the UI and the audit log
	Role   Role
	Secret string // at least 16 characters
}

// MinTokenLen is the shortest secret accepted.
const MinTokenLen = 16

// String names the token by its holder and role, never its secret.
func (t Token) String() string { return fmt.Sprintf("%s (%s)", t.Name, t.Role) }

// GoString keeps %#v from printing the secret.
func (t Token) GoString() string { return fmt.Sprintf("web.Token{Name: %q, Role: %q}", t.Name, t.Role) }

// LogValue keeps slog from printing the secret.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", t.Name), slog.String("role", string(t.Role)))
}

// MarshalJSON leaves the secret out.
func (t Token) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"name":%q,"role":%q}`, t.Name, t.Role), nil
}

// tokenSet holds the tokens by the SHA-256 of their secret: lookups compare
// digests of equal length in constant time, against every token.
type tokenSet []hashedToken

type hashedToken struct {
	name string
	role Role
	sum  [sha256.Size]byte
}

func newTokenSet(tokens []Token) (tokenSet, error) {
	var set tokenSet
	names := map[string]bool{}
	secrets := map[[sha256.Size]byte]bool{}
	for i, t := range tokens {
		sum := sha256.Sum256([]byte(t.Secret))
		switch {
		case t.Name == "":
			return nil, fmt.Errorf("token %d has no name", i+1)
		case names[t.Name]:
			return nil, fmt.Errorf("token name %q is given twice: the audit log could not tell them apart", t.Name)
		case t.Role != RoleViewer && t.Role != RoleOperator:
			return nil, fmt.Errorf("token %s: role %q: want viewer or operator", t.Name, t.Role)
		case len(t.Secret) < MinTokenLen:
			return nil, fmt.Errorf("token %s: secret must be at least %d characters", t.Name, MinTokenLen)
		case secrets[sum]:
			return nil, fmt.Errorf("token %s: the same secret is given to another token", t.Name)
		}
		names[t.Name], secrets[sum] = true, true
		set = append(set, hashedToken{name: t.Name, role: t.Role, sum: sum})
	}
	return set, nil
}

// lookup returns the token whose secret is given. It compares with every
// token, so its time does not tell which token matched, nor how closely.
func (ts tokenSet) lookup(secret string) (hashedToken, bool) {
	sum := sha256.Sum256([]byte(secret))
	var found hashedToken
	ok := 0
	for _, t := range ts {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			found, ok = t, 1
		}
	}
	return found, ok == 1 && secret != ""
}

// identity is who makes a request.
type identity struct {
	Name string
	Role Role
	Via  string   // "api" (bearer token) or "ui" (session cookie)
	sess *session // the session, for its CSRF token; nil via the API
}

// CanOperate tells templates whether to show the buttons that change things.
func (id identity) CanOperate() bool { return id.Role.allows(RoleOperator) }

const identityKey = "undercloud.identity"

// who returns the identity authenticate found.
func who(c echo.Context) identity {
	id, _ := c.Get(identityKey).(identity)
	return id
}

// authenticate lets a request through with a bearer token or a session
// cookie. Without either, an API request gets 401 and a page request is
// sent to the login page.
func (s *server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if h := r.Header.Get("Authorization"); h != "" {
			secret, ok := strings.CutPrefix(h, "Bearer ")
			if !ok {
				return kindf(errUnauthenticated, "the Authorization header must be \"Bearer <token>\"")
			}
			t, ok := s.tokens.lookup(strings.TrimSpace(secret))
			if !ok {
				s.log.Warn("unknown API token", "ip", c.RealIP(), "path", r.URL.Path)
				return kindf(errUnauthenticated, "unknown API token")
			}
			c.Set(identityKey, identity{Name: t.name, Role: t.role, Via: "api"})
			return next(c)
		}
		if sess := s.sessions.fromRequest(r); sess != nil {
			c.Set(identityKey, identity{Name: sess.name, Role: sess.role, Via: "ui", sess: sess})
			return next(c)
		}
		if !isAPI(r) && r.Method == http.MethodGet {
			return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(r.URL.RequestURI()))
		}
		return kindf(errUnauthenticated, "log in, or send an API token: Authorization: Bearer <token>")
	}
}

// operator lets through only operators, and only with the session's CSRF
// token when the request rides on a session cookie. A refusal of a known
// identity is written to the audit log.
func (s *server) operator(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := who(c)
		if !id.Role.allows(RoleOperator) {
			err := kindf(errForbidden, "%s holds a %s token: changes need an operator token", id.Name, id.Role)
			s.auditDenied(c, err)
			return err
		}
		if err := checkCSRF(c, id); err != nil {
			s.auditDenied(c, err)
			return err
		}
		return next(c)
	}
}

// csrf checks the CSRF token of a session's form post that changes no
// inventory (logout).
func (s *server) csrf(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := checkCSRF(c, who(c)); err != nil {
			return err
		}
		return next(c)
	}
}

// checkCSRF requires, of a request made with a session cookie, the
// session's CSRF token in the form field csrf or the X-CSRF-Token header.
// A bearer token cannot ride along with a forged cross-site request, so API
// requests need none.
func checkCSRF(c echo.Context, id identity) error {
	if id.sess == nil {
		return nil
	}
	got := c.Request().Header.Get("X-CSRF-Token")
	if got == "" {
		got = c.FormValue("csrf")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(id.sess.csrf)) != 1 {
		return kindf(errForbidden, "this form is stale or was not sent by this UI (its CSRF token does not match your session): reload the page and try again")
	}
	return nil
}
