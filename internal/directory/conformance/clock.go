package conformance

import (
	"sync"
	"testing"
	"time"
)

// Epoch is where every test's fake clock starts. It carries nanoseconds on
// purpose: stores must truncate times to microseconds.
var Epoch = time.Date(2030, time.January, 2, 3, 4, 5, 123456789, time.UTC)

// FakeClock is a manually advanced clock, safe for concurrent use.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time; pass it as directory.Options.Now.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var clocks sync.Map // *testing.T -> *FakeClock

// Clock returns the fake clock of test t, created at Epoch on first use. The
// suite drives it; newStore must wire it into the store it returns:
//
//	directory.Open(ctx, directory.Options{..., Now: conformance.Clock(t).Now})
func Clock(t *testing.T) *FakeClock {
	c := &FakeClock{now: Epoch}
	v, loaded := clocks.LoadOrStore(t, c)
	if !loaded {
		t.Cleanup(func() { clocks.Delete(t) })
	}
	return v.(*FakeClock)
}
