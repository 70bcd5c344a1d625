// Package testkit holds the small pieces the packages' unit tests share: a
// settable clock and a log sink safe for concurrent writers. It imports
// nothing of undercloud, so any package's tests may use it.
package testkit

import (
	"sync"
	"time"
)

// Clock is a time that only moves when told to: the code under test reads
// it through its Now func, and the test moves it with Advance, so timeouts
// and expiries are tested without sleeping. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock standing at t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
