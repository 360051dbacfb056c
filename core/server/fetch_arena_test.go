package server

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestConcurrentFetchesKeepTheirBytes: fetch responses are read into pooled
// buffers (64 KiB and up) that go back to the pool once encoded. Several
// consumers reading the same partitions at once, each in fetches of a few
// such buffers so they change hands constantly, must each get every record
// with its own value, in order: a buffer returned while a response still
// pointed into it would show up as a wrong value or a broken batch.
func TestConcurrentFetchesKeepTheirBytes(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig(t.TempDir()))
	cl := newClient(t, srv.Addr(), kgo.DefaultProduceTopic("arena"), kgo.ProducerBatchMaxBytes(16<<10),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, cl, "arena", 4, nil)
	const perPartition = 3000
	ctx := testkit.Context(t, 60*time.Second)
	for i := range perPartition {
		for p := range int32(4) {
			cl.Produce(ctx, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "p%d-%06d-%0200d", p, i, i)}, nil)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatalf("produce: %v", err)
	}

	const consumers = 4
	var wg sync.WaitGroup
	errs := make(chan error, consumers)
	for c := range consumers {
		wg.Go(func() {
			cc := newClient(t, srv.Addr(), kgo.ConsumeTopics("arena"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.FetchMaxPartitionBytes(int32(64<<10*(c+1))), kgo.FetchMaxBytes(int32(160<<10*(c+1))))
			next := map[int32]int{}
			for got := 0; got < 4*perPartition; {
				fs := cc.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					errs <- fmt.Errorf("consumer %d: poll after %d records: %w", c, got, err)
					return
				}
				for _, r := range fs.Records() {
					want := fmt.Sprintf("p%d-%06d-%0200d", r.Partition, next[r.Partition], next[r.Partition])
					if string(r.Value) != want || r.Offset != int64(next[r.Partition]) {
						errs <- fmt.Errorf("consumer %d: partition %d offset %d: value %.30q…, want %.30q… at offset %d", c, r.Partition, r.Offset, r.Value, want, next[r.Partition])
						return
					}
					next[r.Partition]++
					got++
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
