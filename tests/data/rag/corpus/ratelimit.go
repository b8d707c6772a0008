// Package ratelimit implements bramblegate's per-tenant request rate limiting.
//
// Every request that reaches bramblegate is charged against two token buckets: one for the
// tenant as a whole and one for the tenant's API key. A request is admitted only when both
// buckets have a token left. Buckets refill continuously rather than once per window, so a
// client that spreads its requests evenly never sees a 429 even at exactly its plan's rate.
//
// State is kept in memory on each bramblegate node and is not shared between nodes. Because the
// load balancer pins a tenant to a node with consistent hashing, this is accurate enough in
// practice; the worst case, a node failure, briefly gives a tenant a fresh bucket on another node.
package ratelimit

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// PlanLimits are the sustained rate (requests per second) and burst size of each plan.
// Grove tenants can have custom limits configured in cinderwick; these are the defaults.
var PlanLimits = map[string]Limit{
	"sprout": {RatePerSecond: 2, Burst: 10},
	"canopy": {RatePerSecond: 25, Burst: 100},
	"grove":  {RatePerSecond: 150, Burst: 600},
}

// KeyShare is the fraction of the tenant's limit that a single API key may use, so that one
// runaway integration cannot starve the tenant's other keys.
const KeyShare = 0.6

// idleEviction is how long a bucket may go unused before it is dropped from memory.
const idleEviction = 10 * time.Minute

// Limit describes a token bucket.
type Limit struct {
	RatePerSecond float64
	Burst         int
}

type bucket struct {
	tokens   float64
	limit    Limit
	lastSeen time.Time
}

func (b *bucket) take(now time.Time) (ok bool, wait time.Duration) {
	elapsed := now.Sub(b.lastSeen).Seconds()
	b.tokens = math.Min(float64(b.limit.Burst), b.tokens+elapsed*b.limit.RatePerSecond)
	b.lastSeen = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	missing := 1 - b.tokens
	return false, time.Duration(missing / b.limit.RatePerSecond * float64(time.Second))
}

// Limiter holds the buckets of every tenant and key seen recently on this node.
type Limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
}

// New returns an empty limiter.
func New() *Limiter {
	return &Limiter{buckets: make(map[string]*bucket), now: time.Now}
}

// Decision is what the HTTP middleware needs to answer the request and set the headers.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration
	Limit      int
}

// Allow charges one request to the tenant's bucket and to the key's bucket.
func (l *Limiter) Allow(tenant, key, plan string) Decision {
	limit, ok := PlanLimits[plan]
	if !ok {
		limit = PlanLimits["sprout"] // unknown plans get the most conservative limit
	}
	keyLimit := Limit{
		RatePerSecond: limit.RatePerSecond * KeyShare,
		Burst:         int(math.Ceil(float64(limit.Burst) * KeyShare)),
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	tenantOK, tenantWait := l.get("t:"+tenant, limit, now).take(now)
	keyOK, keyWait := l.get("k:"+key, keyLimit, now).take(now)
	if tenantOK && keyOK {
		return Decision{Allowed: true, Limit: limit.Burst}
	}
	wait := tenantWait
	if keyWait > wait {
		wait = keyWait
	}
	return Decision{Allowed: false, RetryAfter: wait, Limit: limit.Burst}
}

func (l *Limiter) get(id string, limit Limit, now time.Time) *bucket {
	b, ok := l.buckets[id]
	if !ok {
		b = &bucket{tokens: float64(limit.Burst), limit: limit, lastSeen: now}
		l.buckets[id] = b
	}
	return b
}

// Evict drops buckets that have been idle longer than idleEviction. Called once a minute.
func (l *Limiter) Evict() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := l.now().Add(-idleEviction)
	dropped := 0
	for id, b := range l.buckets {
		if b.lastSeen.Before(cutoff) {
			delete(l.buckets, id)
			dropped++
		}
	}
	return dropped
}

// RetryAfterHeader renders the wait in whole seconds, rounded up, as the API style guide asks.
func RetryAfterHeader(d Decision) string {
	return strconv.Itoa(int(math.Ceil(d.RetryAfter.Seconds())))
}
