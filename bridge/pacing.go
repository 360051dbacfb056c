package bridge

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tributary-io/tributary/internal/tick"
)

// backoff is exponential with full jitter: after n consecutive failures the
// wait is uniform in [min, min*2^n] capped at max, so many edges that lost
// the core at the same moment do not come back in lockstep.
type backoff struct {
	min, max time.Duration
	failures int
}

func (b *backoff) next() time.Duration {
	ceil := b.min << min(b.failures, 30)
	if ceil > b.max || ceil <= 0 {
		ceil = b.max
	}
	b.failures++
	if ceil <= b.min {
		return b.min
	}
	return b.min + rand.N(ceil-b.min)
}

func (b *backoff) reset() { b.failures = 0 }

// tokenBucket caps bytes per second across all partitions. A batch larger
// than the bucket is let through once the bucket is full and leaves it in
// debt, so the long-run rate holds whatever the batch sizes.
type tokenBucket struct {
	rate  float64 // bytes per second; 0 means unlimited
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newTokenBucket(bytesPerSec int64, burst int) *tokenBucket {
	tb := &tokenBucket{rate: float64(bytesPerSec), burst: float64(max(int64(burst), bytesPerSec/10))}
	tb.tokens = tb.burst
	tb.last = time.Now()
	return tb
}

// wait blocks until n bytes may be sent.
func (tb *tokenBucket) wait(ctx context.Context, n int) error {
	if tb == nil || tb.rate <= 0 {
		return nil
	}
	for {
		tb.mu.Lock()
		now := time.Now()
		tb.tokens = min(tb.burst, tb.tokens+now.Sub(tb.last).Seconds()*tb.rate)
		tb.last = now
		if tb.tokens >= min(float64(n), tb.burst) {
			tb.tokens -= float64(n)
			tb.mu.Unlock()
			return nil
		}
		short := min(float64(n), tb.burst) - tb.tokens
		tb.mu.Unlock()
		d := time.Duration(short / tb.rate * float64(time.Second))
		if !tick.Sleep(ctx, max(d, time.Millisecond)) {
			return ctx.Err()
		}
	}
}
