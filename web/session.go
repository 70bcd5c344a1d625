package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// Cookie names.
const (
	sessionCookie = "undercloud_session"
	// loginCookie carries the login form's CSRF token (double submit): there
	// is no session yet to hold it.
	loginCookie = "undercloud_login"
)

// maxSessions bounds the sessions kept; the oldest go first beyond it.
const maxSessions = 10000

// session is a logged-in browser. Sessions live in memory only: a restart
// of the server logs everybody out, which is the price of keeping no
// secret on disk.
type session struct {
	id      string
	name    string // the token's name
	role    Role
	csrf    string // sent back with every form of this session
	expires time.Time
}

// sessionStore holds the sessions by their random ID.
type sessionStore struct {
	ttl time.Duration
	now func() time.Time

	mu   sync.Mutex
	byID map[string]*session
}

// randomToken returns 32 random bytes, base64url: unguessable.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand's contract since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for a token's holder.
func (st *sessionStore) create(name string, role Role) *session {
	now := st.now()
	sess := &session{id: randomToken(), name: name, role: role, csrf: randomToken(), expires: now.Add(st.ttl)}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byID == nil {
		st.byID = map[string]*session{}
	}
	if len(st.byID) >= maxSessions {
		st.purge(now)
	}
	for len(st.byID) >= maxSessions {
		st.dropOldest()
	}
	st.byID[sess.id] = sess
	return sess
}

// purge drops the expired sessions; st.mu is held.
func (st *sessionStore) purge(now time.Time) {
	for id, s := range st.byID {
		if !now.Before(s.expires) {
			delete(st.byID, id)
		}
	}
}

// dropOldest drops the session that expires first; st.mu is held.
func (st *sessionStore) dropOldest() {
	var oldest *session
	for _, s := range st.byID {
		if oldest == nil || s.expires.Before(oldest.expires) {
			oldest = s
		}
	}
	delete(st.byID, oldest.id)
}

// get returns the live session with the given ID, nil if none.
func (st *sessionStore) get(id string) *session {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.byID[id]
	if s == nil {
		return nil
	}
	if !st.now().Before(s.expires) {
		delete(st.byID, id)
		return nil
	}
	return s
}

// end forgets a session.
func (st *sessionStore) end(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.byID, id)
}

// fromRequest returns the session of r's cookie, nil if none is live.
func (st *sessionStore) fromRequest(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	return st.get(c.Value)
}

// cookie returns a cookie only this site's own pages send back: HttpOnly
// (no script reads it), SameSite=Strict (no other site's page makes the
// browser send it), Secure over TLS.
func (s *server) cookie(r *http.Request, name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{
		Name: name, Value: value, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || s.SecureCookies,
	}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	} else {
		c.MaxAge = -1 // delete it
	}
	return c
}

// loginPage shows the login form.
func (s *server) loginPage(c echo.Context) error {
	return s.showLogin(c, http.StatusOK, "")
}

// showLogin renders the login form with a fresh form token.
func (s *server) showLogin(c echo.Context, code int, problem string) error {
	tok := randomToken()
	c.SetCookie(s.cookie(c.Request(), loginCookie, tok, 30*time.Minute))
	data := struct {
		Next, Problem string
		Current       string // who is logged in already
	}{Problem: problem}
	if cur := s.sessions.fromRequest(c.Request()); cur != nil {
		data.Current = cur.name
	}
	next := c.QueryParam("next")
	if next == "" {
		next = c.FormValue("next")
	}
	data.Next = localPath(next)
	return s.render(c, code, "login", page{Title: "Log in", CSRF: tok, Data: data})
}

// login checks a pasted token and starts a session for its holder.
func (s *server) login(c echo.Context) error {
	r := c.Request()
	form, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(form.Value), []byte(c.FormValue("csrf"))) != 1 {
		return s.showLogin(c, http.StatusForbidden, "The login form expired or was not sent by this page: try again.")
	}
	t, ok := s.tokens.lookup(strings.TrimSpace(c.FormValue("token")))
	if !ok {
		s.log.Warn("login with an unknown token", "ip", c.RealIP())
		return s.showLogin(c, http.StatusUnauthorized, "Unknown token. Paste an API token from the server's secrets file.")
	}
	if old := s.sessions.fromRequest(r); old != nil {
		s.sessions.end(old.id) // a new ID at every login: no session fixation
	}
	sess := s.sessions.create(t.name, t.role)
	c.SetCookie(s.cookie(r, sessionCookie, sess.id, s.SessionTTL))
	c.SetCookie(s.cookie(r, loginCookie, "", 0))
	id := identity{Name: t.name, Role: t.role, Via: "ui", sess: sess}
	s.log.Info("login", "actor", t.name, "role", string(t.role), "ip", c.RealIP())
	s.recordAudit(c, id, "login", "", "role "+string(t.role), nil)
	return c.Redirect(http.StatusSeeOther, localPath(c.FormValue("next")))
}

// logout ends the session.
func (s *server) logout(c echo.Context) error {
	id := who(c)
	if id.sess != nil {
		s.sessions.end(id.sess.id)
		s.recordAudit(c, id, "logout", "", "", nil)
	}
	c.SetCookie(s.cookie(c.Request(), sessionCookie, "", 0))
	return c.Redirect(http.StatusSeeOther, "/login")
}
