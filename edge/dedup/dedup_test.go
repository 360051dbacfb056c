package dedup

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

func begin(t *testing.T, w *Window, key string, seq uint64, ts int64) (Claim, bool) {
	t.Helper()
	c, dup, err := w.Begin(context.Background(), key, seq, ts)
	if err != nil {
		t.Fatal(err)
	}
	return c, dup
}

func TestResendIsDuplicate(t *testing.T) {
	t.Parallel()
	w := New(Config{PerDevice: 4})
	k := Key("sensors", "dev-1")
	c, dup := begin(t, w, k, 7, 1000)
	if dup {
		t.Fatal("first copy reported as duplicate")
	}
	c.Done(true)
	if _, dup := begin(t, w, k, 7, 1000); !dup {
		t.Fatal("re-send of a stored reading not recognised")
	}
	// Same seq with a new clock: a device that restarted numbering.
	c, dup = begin(t, w, k, 7, 5000)
	if dup {
		t.Fatal("same seq with another ts taken for a re-send")
	}
	c.Done(true)
	// Same (seq, ts) from another device or stream is not a duplicate.
	for _, other := range []string{Key("sensors", "dev-2"), Key("other", "dev-1")} {
		c, dup := begin(t, w, other, 7, 1000)
		if dup {
			t.Fatalf("%q: duplicate across keys", other)
		}
		c.Done(true)
	}
}

func TestWindowIsBounded(t *testing.T) {
	t.Parallel()
	w := New(Config{PerDevice: 4})
	k := Key("s", "d")
	for seq := uint64(0); seq < 10; seq++ {
		c, dup := begin(t, w, k, seq, int64(seq))
		if dup {
			t.Fatalf("seq %d: duplicate", seq)
		}
		c.Done(true)
	}
	for seq := uint64(9); seq >= 6; seq-- {
		if _, dup := begin(t, w, k, seq, int64(seq)); !dup {
			t.Errorf("seq %d: not a duplicate, but within the last 4", seq)
		}
	}
	if c, dup := begin(t, w, k, 5, 5); dup {
		t.Error("seq 5: duplicate, but the window keeps only the last 4")
	} else {
		c.Done(true)
	}
}

func TestMaxDevices(t *testing.T) {
	t.Parallel()
	w := New(Config{PerDevice: 2, MaxDevices: 32})
	for d := 0; d < 1000; d++ {
		w.Add(Key("s", fmt.Sprint(d)), 1, 1)
	}
	if n := w.Keys(); n > 32 {
		t.Fatalf("%d keys kept, bound is 32", n)
	}
}

func TestFailedAppendIsForgotten(t *testing.T) {
	t.Parallel()
	w := New(Config{})
	k := Key("s", "d")
	c, _ := begin(t, w, k, 1, 1)
	c.Done(false)
	c, dup := begin(t, w, k, 1, 1)
	if dup {
		t.Fatal("a reading whose append failed was taken as stored")
	}
	c.Done(true)
}

// A re-send that arrives while the first copy is still being appended waits
// for its outcome: acknowledged as a duplicate if it was stored, stored
// itself if the first append failed.
func TestResendWaitsForFirstCopy(t *testing.T) {
	t.Parallel()
	for _, firstOK := range []bool{true, false} {
		w := New(Config{})
		k := Key("s", "d")
		c, _ := begin(t, w, k, 3, 30)
		type result struct {
			c   Claim
			dup bool
		}
		got := make(chan result, 1)
		go func() {
			c2, dup, err := w.Begin(context.Background(), k, 3, 30)
			if err != nil {
				t.Error(err)
			}
			got <- result{c2, dup}
		}()
		select {
		case <-got:
			t.Fatal("re-send answered before the first copy finished")
		case <-time.After(50 * time.Millisecond):
		}
		c.Done(firstOK)
		select {
		case r := <-got:
			if r.dup != firstOK {
				t.Fatalf("first ok=%v: re-send dup=%v", firstOK, r.dup)
			}
			r.c.Done(true)
		case <-time.After(5 * time.Second):
			t.Fatal("re-send still waiting")
		}
	}
}

func TestWaitHonoursContext(t *testing.T) {
	t.Parallel()
	w := New(Config{})
	k := Key("s", "d")
	c, _ := begin(t, w, k, 1, 1)
	defer c.Done(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := w.Begin(ctx, k, 1, 1); err == nil {
		t.Fatal("Begin returned without error while the first copy was pending and ctx expired")
	}
}

// Many goroutines race to store the same readings: each (seq, ts) is stored
// exactly once.
func TestConcurrentExactlyOnce(t *testing.T) {
	t.Parallel()
	w := New(Config{PerDevice: 256})
	var stored [100]atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range uint64(100) {
				c, dup, err := w.Begin(context.Background(), Key("s", "d"), seq, int64(seq)*10)
				if err != nil {
					t.Error(err)
					return
				}
				if !dup {
					stored[seq].Add(1)
					c.Done(true)
				}
			}
		}()
	}
	wg.Wait()
	for seq := range stored {
		if n := stored[seq].Load(); n != 1 {
			t.Errorf("seq %d stored %d times", seq, n)
		}
	}
}

func BenchmarkBegin(b *testing.B) {
	w := New(Config{})
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = Key("sensors", fmt.Sprintf("dev-%06d", i))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c, _, _ := w.Begin(context.Background(), keys[i%len(keys)], uint64(i), int64(i))
		c.Done(true)
	}
}

// A gateway keeps PerDevice entries for every device (64 × 1,000 devices
// by default): a field added to entry costs that many times over.
func TestEntrySize(t *testing.T) {
	if got := unsafe.Sizeof(entry{}); got > 24 {
		t.Errorf("entry is %d bytes, want at most 24", got)
	}
}
