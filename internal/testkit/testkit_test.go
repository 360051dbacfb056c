package testkit

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

func TestFreePortUniqueAcrossGoroutines(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				p := FreePort(t)
				mu.Lock()
				if seen[p] {
					t.Errorf("port %d handed out twice", p)
				}
				seen[p] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	l, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatalf("a free address cannot be bound: %v", err)
	}
	l.Close()
}

func TestLoggerAfterTestEnds(t *testing.T) {
	t.Parallel()
	var late func()
	t.Run("inner", func(t *testing.T) {
		log := Logger(t)
		log.Warn("inside the test")
		late = func() { log.Warn("after the test") }
	})
	late() // must neither panic nor reach the ended test
}

func TestPoll(t *testing.T) {
	t.Parallel()
	n := 0
	if !Poll(time.Second, func() bool { n++; return n == 3 }) || n != 3 {
		t.Fatalf("poll stopped after %d calls", n)
	}
	start := time.Now()
	if Poll(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("poll of a false condition held")
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("poll gave up after %v, before its limit", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if PollContext(ctx, func() bool { return false }) {
		t.Fatal("poll after its context ended held")
	}
}

func TestRunStopsOnce(t *testing.T) {
	t.Parallel()
	var runs, stops int
	stop := Run(t, "component", func(ctx context.Context) error {
		runs++
		<-ctx.Done()
		stops++
		return ctx.Err() // context.Canceled is how a component says it stopped
	})
	stop()
	stop()
	if runs != 1 || stops != 1 {
		t.Fatalf("ran %d times, stopped %d times", runs, stops)
	}
}
