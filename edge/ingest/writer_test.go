package ingest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// TestDeferredRecordsCompleteOnce: deferred records (whose publishers do not
// wait) mixed with waiting ones are all written, in order per publisher, and
// each completion runs exactly once — after the fsync, with the write error
// when the disk fails.
func TestDeferredRecordsCompleteOnce(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprintf("failing=%v", failing), func(t *testing.T) {
			h := newTestHookConfig(t, Config{DefaultPartitions: 1})
			if failing {
				h.appendBatch = func(*storage.Log, context.Context, []byte, storage.AppendOptions) (storage.AppendResult, error) {
					return storage.AppendResult{}, fmt.Errorf("write: %w", syscall.EIO)
				}
			}
			st, err := h.stream("s")
			if err != nil {
				t.Fatal(err)
			}
			const publishers, per = 8, 400
			var (
				wg        sync.WaitGroup
				completed [publishers][per]atomic.Int32
				failed    atomic.Int64
				unsynced  atomic.Int64
			)
			l := st.writers[0].log
			for p := 0; p < publishers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < per; i++ {
						rec := recordbatch.Record{Key: []byte(fmt.Sprintf("p%d", p)), Value: []byte(fmt.Sprintf("%d", i))}
						if i%5 == 0 { // some publishers wait, as QoS 2 and read-loop acks do
							if err := st.append(h, rec, true, nil); (err != nil) != failing {
								t.Errorf("waiting append: %v", err)
							}
							continue
						}
						_ = st.append(h, rec, true, func(err error) {
							if err != nil {
								failed.Add(1)
							} else if l.SyncedOffset() < 1 {
								unsynced.Add(1)
							}
							completed[p][i].Add(1)
						})
					}
				}()
			}
			wg.Wait()
			deadline := time.Now().Add(10 * time.Second)
			for p := 0; p < publishers; p++ {
				for i := 0; i < per; i++ {
					if i%5 == 0 {
						continue
					}
					for completed[p][i].Load() == 0 && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
					if n := completed[p][i].Load(); n != 1 {
						t.Fatalf("record %d/%d completed %d times", p, i, n)
					}
				}
			}
			if unsynced.Load() != 0 {
				t.Fatalf("%d completions before any fsync", unsynced.Load())
			}
			deferred := int64(publishers * per * 4 / 5)
			if failing {
				if failed.Load() != deferred {
					t.Fatalf("%d of %d deferred records reported the disk error", failed.Load(), deferred)
				}
				return
			}
			if failed.Load() != 0 {
				t.Fatalf("%d failures on a working disk", failed.Load())
			}
			// Every record is stored, each publisher's in order.
			last := map[string]int{}
			n := 0
			for off := l.StartOffset(); off < l.NextOffset(); {
				b, err := l.Read(off, 1<<20, -1)
				if err != nil {
					t.Fatal(err)
				}
				err = recordbatch.Split(b, func(hd recordbatch.Header, batch []byte) error {
					recs, err := recordbatch.Records(batch)
					for _, r := range recs {
						var i int
						fmt.Sscan(string(r.Value), &i)
						if prev, ok := last[string(r.Key)]; ok && i != prev+1 {
							t.Fatalf("%s: record %d after %d", r.Key, i, prev)
						}
						last[string(r.Key)] = i
						n++
					}
					off = hd.NextOffset()
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if n != publishers*per {
				t.Fatalf("stored %d records, want %d", n, publishers*per)
			}
		})
	}
}
