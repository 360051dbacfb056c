package tick

import (
	"context"
	"testing"
	"time"
)

func TestEveryStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	for range Every(ctx, time.Millisecond) {
		n++
		if n == 3 {
			cancel()
		}
	}
	// A tick that is due when ctx ends may still win the select once, as
	// with a hand-written ticker loop; what matters is that the loop ends.
	if n < 3 {
		t.Fatalf("ran %d times, want at least 3", n)
	}
}

func TestEveryStopsOnBreak(t *testing.T) {
	n := 0
	for range Every(context.Background(), time.Millisecond) {
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Fatalf("ran %d times, want 2", n)
	}
}

func TestEveryWaitsAPeriodFirst(t *testing.T) {
	const d = 20 * time.Millisecond
	start := time.Now()
	for range Every(context.Background(), d) {
		break
	}
	if waited := time.Since(start); waited < d {
		t.Fatalf("first tick after %v, want at least %v", waited, d)
	}
}

func TestEveryEndedContextRunsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range Every(ctx, time.Hour) {
		t.Fatal("body ran with an ended context")
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep with a live context reported it ended")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep with an ended context reported the full wait")
	}
	if waited := time.Since(start); waited > time.Minute {
		t.Fatalf("Sleep with an ended context waited %v", waited)
	}
}
