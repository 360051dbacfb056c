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

func (s *Server) handleFetch(ctx context.Context, c *call, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FetchRequest)
	if req.SessionID != 0 {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		c.fail(resp.ErrorCode)
		return resp, nil
	}
	wait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if wait > defaultMaxFetchWait {
		wait = defaultMaxFetchWait
	}
	var timer *time.Timer
	// arena holds the batch bytes of the response until it is encoded
	// (c.release); a response given up for a re-read returns it first.
	var arena []byte
	c.release = func() { bufpool.Put(arena) }
	for {
		resp, size, failed, changed, a := s.fetchOnce(c, req)
		arena = a
		if size >= int(req.MinBytes) || failed || wait <= 0 || ctx.Err() != nil {
			return resp, nil
		}
		bufpool.Put(arena)
		arena = nil
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
			resp, _, _, _, arena = s.fetchOnce(c, req)
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

// maxFetchArena caps the pooled buffer one fetch reads into; a response
// larger than that reads its remaining partitions into fresh slices.
const maxFetchArena = 16 << 20

// fetchOnce builds a response from what is stored now. It returns the bytes
// gathered, whether any partition failed (Kafka answers at once then), the
// change channels of the partitions, taken before reading so that no append
// between the read and the wait is missed, and the pooled buffer the
// response's batches point into (nil when none), to be returned with
// bufpool.Put once the response is encoded or dropped.
func (s *Server) fetchOnce(c *call, req *kmsg.FetchRequest) (*kmsg.FetchResponse, int, bool, []<-chan struct{}, []byte) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	callCode := c.code
	remaining := int(req.MaxBytes)
	if req.Version < 3 || remaining <= 0 {
		remaining = int(s.cfg.MaxFrameBytes)
	}
	var arena []byte
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
			p, err := s.partition(rt.Topic, rp.Partition)
			switch {
			case err != nil:
				fail(errorCode(err))
			case rp.CurrentLeaderEpoch > p.LeaderEpoch():
				fail(kerr.UnknownLeaderEpoch.Code)
			case rp.CurrentLeaderEpoch >= 0 && rp.CurrentLeaderEpoch < p.LeaderEpoch():
				fail(kerr.FencedLeaderEpoch.Code)
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
				read := p.Read
				if req.ReplicaID >= 0 {
					read = func(dst []byte, from int64, max int) ([]byte, int64, error) {
						return p.ReadReplica(dst, req.ReplicaID, from, max)
					}
				} else if req.IsolationLevel == 1 { // read_committed: up to the LSO (txn_partition.go)
					read = func(dst []byte, from int64, max int) ([]byte, int64, error) {
						return p.readCommitted(dst, from, max, &sp)
					}
				}
				if arena == nil {
					arena = bufpool.Get(min(remaining, fetchWant(req), maxFetchArena))
				}
				room := arena[len(arena):]
				b, hw, err := read(room, rp.FetchOffset, max)
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
					if cap(room) > 0 && &b[0] == &room[:1][0] {
						arena = arena[:len(arena)+len(b)] // read in place
					}
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
	if size == 0 {
		bufpool.Put(arena) // nothing points into it
		arena = nil
	}
	return resp, size, failed, changed, arena
}

// fetchWant is what a fetch may gather at most by its partitions' limits.
func fetchWant(req *kmsg.FetchRequest) int {
	n := 0
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			n += int(max(rp.PartitionMaxBytes, 0))
		}
	}
	return n
}
