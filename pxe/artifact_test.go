package pxe

import (
	"net/http/httptest"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/testvm/testkit"
)

// slowArtifacts opens from a store after a delay, as a busy disk or a
// saturated link would make a download last, and remembers when it was
// asked.
type slowArtifacts struct {
	Artifacts
	delay time.Duration

	mu    sync.Mutex
	asked time.Time
}

func (s *slowArtifacts) Open(digest string) (*os.File, error) {
	s.mu.Lock()
	s.asked = time.Now()
	s.mu.Unlock()
	time.Sleep(s.delay)
	return s.Artifacts.Open(digest)
}

func (s *slowArtifacts) askedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked
}

// TestArtifactEventTime checks that an artifact event is stamped when the
// request came, not when the transfer ended: a download that ends after the
// node's booted report began before it, and a step stamped after that report
// would make the inventory take the machine for booting again. A request
// without ?mac= (the rootfs URL, a mirror's) is named by the client's lease.
func TestArtifactEventTime(t *testing.T) {
	e := newBootEnv(t)
	slow := &slowArtifacts{Artifacts: e.h.Artifacts, delay: 300 * time.Millisecond}
	h := *e.h
	h.Artifacts = slow
	h.Leases = leaseTable{netip.MustParseAddr("127.0.0.1"): macB}
	handler, err := h.Handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)

	kernel := testkit.SHA256Hex(e.kernel)
	for name, tc := range map[string]struct {
		query, mac string
	}{
		"mac in the query": {"?mac=" + macA, macA},
		"mac by lease":     {"", macB},
	} {
		t.Run(name, func(t *testing.T) {
			before := time.Now()
			if r := curl(t, srv.URL+"/images/sha256/"+kernel+tc.query); r.status != 200 || len(r.body) != len(e.kernel) {
				t.Fatalf("GET: %d, %d bytes", r.status, len(r.body))
			}
			after := time.Now()
			ev := e.events.wait(t, func(ev Event) bool {
				return ev.Kind == event.Artifact && ev.MAC == tc.mac
			})
			asked := slow.askedAt()
			if ev.Time.Before(before) || ev.Time.After(asked) {
				t.Errorf("event stamped %v, want the request's start: between %v (sent) and %v (store asked); the answer ended by %v",
					ev.Time.Format(time.StampMicro), before.Format(time.StampMicro), asked.Format(time.StampMicro), after.Format(time.StampMicro))
			}
			if ev.Bytes != int64(len(e.kernel)) || ev.File != kernel || ev.Error != "" {
				t.Errorf("event %+v, want %d bytes of %s", ev, len(e.kernel), kernel)
			}
		})
	}
}
