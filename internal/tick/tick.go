// Package tick holds the two ways our code waits on the clock until a
// context ends: Every, the ticker loop of the background loops in the
// bridge, the storage engine, the cluster and the demo, and Sleep, a
// single wait (backoff, pacing, polling).
package tick

import (
	"context"
	"iter"
	"time"
)

// Every yields the time of each tick of a period d, the first one d after
// the loop starts, and stops when ctx ends. Ticks that come while the loop
// body runs are dropped (as with time.Ticker), so a slow body does not
// queue up work. The ticker stops when the loop ends, by break or return
// as well.
func Every(ctx context.Context, d time.Duration) iter.Seq[time.Time] {
	return func(yield func(time.Time) bool) {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if !yield(now) {
					return
				}
			}
		}
	}
}

// Sleep waits d or until ctx ends, whichever comes first, and reports
// whether the whole of d passed (false: ctx ended).
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
