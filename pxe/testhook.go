package pxe

import (
	"net/http"
)

// holdForTest wraps next with the TestHold hook: a request for the path
// TestHold names is logged at Warn as "held by test hook" and never
// answered; it ends when its client goes away or the process dies. A test
// waits for that log line and kills the server at exactly that step of a
// boot (testvm's TestStallAtFirstScript), rather than hoping a timing
// lands there. Nothing but the UNDERCLOUD_TEST_HOLD environment variable
// sets it.
func (s *server) holdForTest(next http.Handler) http.Handler {
	s.log.Warn("test hook on: requests for this path are held unanswered", "path", s.TestHold)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != s.TestHold {
			next.ServeHTTP(w, r)
			return
		}
		ip := clientIP(r.RemoteAddr)
		mac := ""
		if s.Leases != nil && ip.IsValid() {
			mac, _ = s.Leases.MACByIP(r.Context(), ip)
		}
		s.log.Warn("held by test hook", "path", r.URL.Path, "ip", ip.String(), "mac", mac)
		<-r.Context().Done()
	})
}
