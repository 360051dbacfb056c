package server

import (
	"context"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/bufpool"
)

// Fetch v4-v12: v4 is the first with record batch v2 (what librdkafka
// needs); v13+ switches to topic ids. Fetch sessions are declined: every
// response carries session id 0, which tells clients to keep sending full
// fetch requests.
func init() { register(1, 4, 12, (*Server).handleFetch) }

// handleFetch answers with the response of its last read (fetchOnce builds
// one per read); the response it is given only declines a fetch session.
func (s *Server) handleFetch(ctx context.Context, c *call,
	req *kmsg.FetchRequest, noSession *kmsg.FetchResponse) (kmsg.Response, error) {
	if req.SessionID != 0 {
		noSession.ErrorCode = kerr.FetchSessionIDNotFound.Code
		c.fail(noSession.ErrorCode)
		return noSession, nil
	}
	wait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if wait > defaultMaxFetchWait {
		wait = defaultMaxFetchWait
	}
	var timer *time.Timer
	// bufs holds the batch bytes of the response until it is encoded
	// (c.release); a response given up for a re-read returns them first.
	var bufs fetchBufs
	c.release = bufs.release
	for {
		resp, size, failed, changed := s.fetchOnce(c, req, &bufs)
		if size >= int(req.MinBytes) || failed || wait <= 0 || ctx.Err() != nil {
			return resp, nil
		}
		bufs.release()
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		// Sleep until any fetched partition changes, the wait runs out or the
		// connection ends; then read again.
		cases := make([]reflect.SelectCase, 0, len(changed)+2)
		cases = append(cases,
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)})
		for _, ch := range changed {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		chosen, _, _ := reflect.Select(cases)
		if chosen <= 1 {
			// Time is up (or the connection is closing): answer with what
			// there is now.
			resp, _, _, _ = s.fetchOnce(c, req, &bufs)
			return resp, nil
		}
	}
}

// newFetchPartition is a partition's answer before the log is read: no
// offsets (-1), code as its error.
func newFetchPartition(partition int32, code int16) kmsg.FetchResponseTopicPartition {
	sp := kmsg.NewFetchResponseTopicPartition()
	sp.Partition, sp.ErrorCode = partition, code
	sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
	// Empty, not null, even on an error (a topic the client may not read
	// included): librdkafka rejects a null record set.
	sp.RecordBatches = []byte{}
	return sp
}

// fetchBufs are the pooled buffers one fetch response's batches were read
// into. Each is taken for the bytes one partition read needs (a small read
// gets a plain slice), so a burst of fetches that each find a little new
// data holds no large buffers.
type fetchBufs struct{ held [][]byte }

// alloc is the storage read's allocator (storage.Log.ReadInto).
func (f *fetchBufs) alloc(n int) []byte {
	b := bufpool.Get(n)
	f.held = append(f.held, b)
	return b
}

// release returns every buffer; nothing may point into them any more.
func (f *fetchBufs) release() {
	for _, b := range f.held {
		bufpool.Put(b)
	}
	clear(f.held)
	f.held = f.held[:0]
}

// fetchOnce builds a response from what is stored now, reading into bufs.
// It returns the bytes gathered, whether any partition failed or told a
// follower its log diverged (Kafka answers at once then) and the change
// channels of the partitions, taken before reading so that no append
// between the read and the wait is missed.
func (s *Server) fetchOnce(c *call, req *kmsg.FetchRequest, bufs *fetchBufs) (*kmsg.FetchResponse, int, bool, []<-chan struct{}) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	callCode := c.code
	remaining := int(req.MaxBytes)
	if req.Version < 3 || remaining <= 0 {
		remaining = int(s.cfg.MaxFrameBytes)
	}
	size := 0
	failed := false
	var changed []<-chan struct{}
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := newFetchPartition(rp.Partition, 0)
			fail := func(code int16) {
				sp.ErrorCode = code
				c.fail(code)
				failed = true
			}
			p, code := s.partitionAtEpoch(rt.Topic, rp.Partition, rp.CurrentLeaderEpoch)
			switch {
			case code != 0:
				fail(code)
			default:
				changed = append(changed, p.Changed())
				max := int(rp.PartitionMaxBytes)
				if max > remaining {
					max = remaining
				}
				if max <= 0 && size > 0 {
					// The response is full; report offsets only.
					sp.HighWatermark = p.HighWatermark()
					sp.LastStableOffset, sp.LogStartOffset = p.LastStableOffset(), p.LogStartOffset()
					break
				}
				if req.ReplicaID >= 0 && rp.LastFetchedEpoch >= 0 {
					// A follower's fetch counts only if its log matches
					// ours up to its fetch offset; else it is told where
					// they part (KIP-595), and truncates.
					if ep, end := p.EndOffsetForEpoch(rp.LastFetchedEpoch); ep != rp.LastFetchedEpoch || end < rp.FetchOffset {
						sp.HighWatermark, sp.LogStartOffset = p.HighWatermark(), p.LogStartOffset()
						if ep < 0 || end < 0 {
							// No epoch in common: as Kafka, out of range;
							// the follower starts again (fetcher.truncate).
							fail(kerr.OffsetOutOfRange.Code)
							break
						}
						sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = ep, end
						failed = true // answered at once, as Kafka does: the follower truncates
						break
					}
				}
				read := p.Read
				if req.ReplicaID >= 0 {
					read = func(alloc func(int) []byte, from int64, max int) ([]byte, int64, error) {
						return p.ReadReplica(alloc, req.ReplicaID, rp.CurrentLeaderEpoch, from, max)
					}
				} else if req.IsolationLevel == 1 { // read_committed: up to the LSO (txn_partition.go)
					read = func(alloc func(int) []byte, from int64, max int) ([]byte, int64, error) {
						return p.readCommitted(alloc, from, max, &sp)
					}
				}
				b, hw, err := read(bufs.alloc, rp.FetchOffset, max)
				sp.HighWatermark, sp.LogStartOffset = hw, p.LogStartOffset()
				if req.IsolationLevel != 1 || req.ReplicaID >= 0 {
					sp.LastStableOffset = p.log.LastStableOffset(hw)
				}
				if err != nil {
					fail(errorCode(err))
					break
				}
				if len(b) > 0 {
					sp.RecordBatches = b
				}
				size += len(b)
				remaining -= len(b)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if !failed {
		c.code = callCode // a retry loop must not report stale codes
	}
	return resp, size, failed, changed
}
