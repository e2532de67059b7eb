package saml

import (
	"context"
	"sync"
	"time"
)

// MemoryReplayCache is a ReplayCache in this process's memory. It is right for one replica
// and for tests; with several replicas use one backed by the shared store, or a replay sent to
// another replica is accepted there.
type MemoryReplayCache struct {
	now  func() time.Time
	mu   sync.Mutex
	seen map[string]time.Time
	adds int
}

// NewMemoryReplayCache returns an empty MemoryReplayCache; now defaults to time.Now.
func NewMemoryReplayCache(now func() time.Time) *MemoryReplayCache {
	if now == nil {
		now = time.Now
	}
	return &MemoryReplayCache{now: now, seen: map[string]time.Time{}}
}

// Remember implements ReplayCache.
func (c *MemoryReplayCache) Remember(_ context.Context, id string, until time.Time) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if exp, ok := c.seen[id]; ok && now.Before(exp) {
		return false, nil
	}
	c.seen[id] = until
	if c.adds++; c.adds >= 1024 {
		c.adds = 0
		for k, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, k)
			}
		}
	}
	return true, nil
}
