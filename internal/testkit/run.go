package testkit

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// StopLimit bounds how long a component started with Run may take to stop.
const StopLimit = 30 * time.Second

// Run runs a component (a gateway, a bridge, an aggregation runner: any
// Run(ctx) error) in a goroutine the test owns. stop cancels its context
// and waits for it, at most StopLimit; a component that returns an error
// (other than context.Canceled) or does not stop in time fails the test, with the stacks of Tributary's
// goroutines for the hang. stop may be called more than once and is called
// when the test ends.
func Run(t testing.TB, what string, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("%s: %v", what, err)
				}
			case <-time.After(StopLimit):
				t.Errorf("%s did not stop within %v; its goroutines:\n%s", what, StopLimit, ourGoroutines())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// ourGoroutines is the stacks of the goroutines running Tributary or
// mochi-mqtt code, for a component that hangs.
func ourGoroutines() string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "tributary-io/tributary/") && !strings.Contains(g, "testkit.ourGoroutines") || strings.Contains(g, "mochi-mqtt") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
