package bridge

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
)

// failEpochOnce fails the first save of a producer epoch (a meta.db write
// that hit ENOSPC once, under the same disk pressure that made drop-oldest
// delete segments).
type failEpochOnce struct {
	*meta.Store
	failed atomic.Bool
}

func (s *failEpochOnce) PutValue(key string, v []byte) error {
	if strings.HasPrefix(key, "bridge-epoch/") && s.failed.CompareAndSwap(false, true) {
		return errors.New("no space left on device")
	}
	return s.Store.PutValue(key, v)
}

// TestFailedEpochSaveRetried: saving the epoch that declares a gap fails
// once (a full disk, under the same pressure that makes drop-oldest delete
// records). The retried session used to find the gap already counted,
// cross it under the old epoch, and be refused as out of order for good:
// the partition stalled until a restart.
func TestFailedEpochSaveRetried(t *testing.T) {
	t.Parallel()
	_, addr := startCore(t)
	e := openEdgeWith(t, t.TempDir(), 1, storage.LogConfig{SegmentBytes: 32 << 10})
	for s := uint64(0); s < 1000; s++ {
		if err := e.appendReading("d-1", s, 100); err != nil {
			t.Fatal(err)
		}
	}
	rb := startBridge(t, testBridgeConfig(addr), e)
	rb.waitCaughtUp(t, 20*time.Second)
	rb.stop()
	l, _ := e.topics.Partition(stream, 0)
	for s := uint64(1000); s < 3000; s++ {
		if err := e.appendReading("d-1", s, 100); err != nil {
			t.Fatal(err)
		}
	}
	for l.StartOffset() <= 1200 {
		if _, err := l.DropOldestSegment(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := New(testBridgeConfig(addr), e.topics, &failEpochOnce{Store: e.store}, prometheus.NewRegistry(), testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	caughtUp := testkit.Poll(10*time.Second, func() bool {
		st := b.Status()
		return len(st.Partitions) == 1 && st.Backlog() == 0
	})
	if !caughtUp {
		st := b.Status().Partitions[0]
		t.Fatalf("partition stalled: cursor %d, log %d..%d, retries %d, last error %q", st.Cursor, st.LogStart, st.LogEnd, st.Retries, st.LastError)
	}
}
