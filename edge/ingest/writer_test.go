package ingest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// TestDeferredRecordsCompleteOnce: deferred records (whose publishers do not
// wait) mixed with waiting ones are all written, in order per publisher, and
// each is acknowledged exactly once, in order, on the publisher's real mochi
// connection — after the fsync; when the disk fails, MQTT 3.1.1 publishers
// get no PUBACK and MQTT 5 ones get a failure code.
func TestDeferredRecordsCompleteOnce(t *testing.T) {
	t.Parallel()
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprintf("failing=%v", failing), func(t *testing.T) {
			h := newTestHookConfig(t, Config{DefaultPartitions: 1})
			if failing {
				h.appendBatch = func(storage.PartitionLog, context.Context, []byte, storage.AppendOptions) (storage.AppendResult, error) {
					return storage.AppendResult{}, fmt.Errorf("write: %w", syscall.EIO)
				}
			}
			st, err := h.stream("s")
			if err != nil {
				t.Fatal(err)
			}
			const publishers, per = 8, 400
			var (
				wg       sync.WaitGroup
				readers  sync.WaitGroup
				acked    [publishers][]uint16 // PUBACK packet ids in arrival order
				codes    [publishers]map[byte]int
				unsynced atomic.Int64
				received atomic.Int64 // PUBACKs read, all publishers
			)
			l := st.writers[0].log.(*storage.Log)
			srv := mqtt.New(nil)
			for p := 0; p < publishers; p++ {
				server, client := net.Pipe()
				t.Cleanup(func() { server.Close(); client.Close() })
				cl := srv.NewClient(server, "test", fmt.Sprintf("pub-%d", p), false)
				cl.Properties.ProtocolVersion = byte(4 + p%2) // odd publishers speak MQTT 5
				codes[p] = map[byte]int{}
				readers.Add(1)
				go func() { // the device: reads its PUBACKs until the pipe closes
					defer readers.Done()
					r := bufio.NewReader(client)
					for {
						hdr, err := r.ReadByte()
						if err != nil {
							return
						}
						n, _ := r.ReadByte()
						body := make([]byte, n)
						if _, err := io.ReadFull(r, body); err != nil || hdr != packets.Puback<<4 || n < 2 {
							t.Errorf("publisher %d: bad packet %#x % x: %v", p, hdr, body, err)
							return
						}
						if l.SyncedOffset() < 1 && !failing {
							unsynced.Add(1)
						}
						acked[p] = append(acked[p], uint16(body[0])<<8|uint16(body[1]))
						received.Add(1)
						code := byte(0)
						if n > 2 {
							code = body[2]
						}
						codes[p][code]++
					}
				}()
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < per; i++ {
						rec := recordbatch.Record{Key: []byte(fmt.Sprintf("p%d", p)), Value: []byte(fmt.Sprintf("%d", i))}
						q := newPending()
						q.rec = rec
						if i%5 == 0 { // some publishers wait, as QoS 2 and read-loop acks do
							if err := st.append(h, q, true); (err != nil) != failing {
								t.Errorf("waiting append: %v", err)
							}
							continue
						}
						acks := h.acksFor(cl)
						ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
						ticket, err := acks.reserve(ctx, uint16(i+1)) // waits for PUBACKs to free a slot
						cancel()
						if err != nil {
							t.Error(err)
							return
						}
						q.dp = deferredPublish{acks: acks, ticket: ticket, v5: p%2 == 1, topic: "s/x",
							out: outcome{st: st, qos: 1, start: time.Now()}}
						q.deferred = &q.dp
						_ = st.append(h, q, true)
					}
				}()
			}
			wg.Wait()
			// Every deferred record is settled once its queue drains.
			h.acks.Range(func(_, v any) bool {
				a := v.(*clientAcks)
				testkit.Poll(10*time.Second, func() bool {
					a.mu.Lock()
					defer a.mu.Unlock()
					return a.n == 0
				})
				return true
			})
			// The pipes hand over the last PUBACKs; a shortfall is reported
			// per publisher below.
			wantAcks := 0
			for p := 0; p < publishers; p++ {
				if !failing || p%2 == 1 {
					wantAcks += per * 4 / 5
				}
			}
			testkit.Poll(10*time.Second, func() bool { return received.Load() >= int64(wantAcks) })
			h.acks.Range(func(k, _ any) bool { k.(*mqtt.Client).Net.Conn.Close(); return true })
			readers.Wait()
			if unsynced.Load() != 0 {
				t.Fatalf("%d PUBACKs before any fsync", unsynced.Load())
			}
			deferredPer := per * 4 / 5
			for p := 0; p < publishers; p++ {
				want := deferredPer
				if failing && p%2 == 0 {
					want = 0 // MQTT 3.1.1: no PUBACK, the device re-sends
				}
				if len(acked[p]) != want {
					t.Fatalf("publisher %d (v%d): %d PUBACKs, want %d", p, 4+p%2, len(acked[p]), want)
				}
				for j := 1; j < len(acked[p]); j++ {
					if acked[p][j] <= acked[p][j-1] {
						t.Fatalf("publisher %d: PUBACK %d after %d", p, acked[p][j], acked[p][j-1])
					}
				}
				if failing && p%2 == 1 && codes[p][packets.ErrImplementationSpecificError.Code] != want {
					t.Fatalf("publisher %d: codes %v, want %d × 0x83", p, codes[p], want)
				}
				if !failing && codes[p][0] != want {
					t.Fatalf("publisher %d: codes %v, want %d successes", p, codes[p], want)
				}
			}
			if failing {
				return
			}
			// Every record is stored, each publisher's in order.
			last := map[string]int{}
			recs := testkit.LogRecords(t, l)
			for _, r := range recs {
				var i int
				fmt.Sscan(string(r.Value), &i)
				if prev, ok := last[string(r.Key)]; ok && i != prev+1 {
					t.Fatalf("%s: record %d after %d", r.Key, i, prev)
				}
				last[string(r.Key)] = i
			}
			if n := len(recs); n != publishers*per {
				t.Fatalf("stored %d records, want %d", n, publishers*per)
			}
		})
	}
}

// TestAckRingGrowsInOrder: a connection's PUBACK ring grows while slots
// are out (head past 0, so tickets wrap around the small ring) and still
// writes the PUBACKs in reservation order, whatever order they settle in.
func TestAckRingGrowsInOrder(t *testing.T) {
	t.Parallel()
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	cl := mqtt.New(nil).NewClient(server, "test", "ring", false)
	a := &clientAcks{cl: cl, space: make(chan struct{}, 1)}
	read := make(chan []byte, 1)
	go func() {
		b := make([]byte, 4*9)
		_, _ = io.ReadFull(client, b)
		read <- b
	}()
	ctx := context.Background()
	var fl ackFlush
	var tickets []ackTicket
	for id := uint16(1); id <= 3; id++ {
		tk, err := a.reserve(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	a.ready(tickets[0], true, packets.CodeSuccess, &fl)
	a.ready(tickets[1], true, packets.CodeSuccess, &fl)
	fl.flush()                           // ids 1 and 2 out; the head moves on
	for id := uint16(4); id <= 9; id++ { // 7 outstanding: grows 4 → 8
		tk, err := a.reserve(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	if len(a.ring) != 8 {
		t.Fatalf("ring of %d slots for 7 outstanding, want 8", len(a.ring))
	}
	for i := len(tickets) - 1; i >= 2; i-- { // settle newest first
		a.ready(tickets[i], true, packets.CodeSuccess, &fl)
	}
	fl.flush()
	b := <-read
	for i := 0; i < 9; i++ {
		if b[4*i] != packets.Puback<<4 || int(b[4*i+2])<<8|int(b[4*i+3]) != i+1 {
			t.Fatalf("PUBACK %d: % x, want packet id %d", i, b[4*i:4*i+4], i+1)
		}
	}
	if a.n != 0 {
		t.Fatalf("%d slots still out", a.n)
	}
}

// TestFsyncPacing: a partition whose durable records come at least
// gatherPacedMin per gatherPaced gathers until gatherPaced after its last
// fsync began; a slower one syncs at once, as does a fast one whose last
// fsync began gatherPaced ago or more (a slow disk) or that has just woken
// from a long idle; the count rule (gatherBusy) is unchanged.
func TestFsyncPacing(t *testing.T) {
	t.Parallel()
	// feed queues n durable records every `every`, from a new partition.
	feed := func(w *partitionWriter, now *time.Duration, every time.Duration, n int) {
		for range n {
			*now += every
			w.arrived(*now)
		}
	}
	newWriter := func() *partitionWriter {
		w := &partitionWriter{}
		w.meanGap.Store(int64(maxGap))
		return w
	}
	const fsync = 300 * time.Microsecond
	for _, tc := range []struct {
		name       string
		every      time.Duration // between records
		n          int           // records queued so far
		sinceSync  time.Duration // from the last fsync's start to the acker's next batch
		last       int           // records the last fsync covered
		want       bool
		wantWindow time.Duration // the deadline, after the last fsync began
		wantQuiet  time.Duration
	}{
		{name: "10k msgs/s over 4 partitions", every: 400 * time.Microsecond, n: 500, sinceSync: fsync, last: 4, want: true, wantWindow: gatherPaced, wantQuiet: 1600 * time.Microsecond},
		{name: "just fast enough", every: gatherPaced/gatherPacedMin - 10*time.Microsecond, n: 500, sinceSync: fsync, last: 2, want: true, wantWindow: gatherPaced, wantQuiet: 3960 * time.Microsecond},
		{name: "1k msgs/s over 4 partitions", every: 4 * time.Millisecond, n: 500, sinceSync: fsync, last: 1, want: false},
		{name: "fast, slow disk", every: 400 * time.Microsecond, n: 500, sinceSync: gatherPaced + fsync, last: 20, want: false},
		{name: "a short burst on a new partition", every: 400 * time.Microsecond, n: 10, sinceSync: fsync, last: 4, want: false},
		{name: "count rule", every: 4 * time.Millisecond, n: 500, sinceSync: time.Millisecond, last: gatherBusy, want: true, wantWindow: time.Millisecond + syncGather, wantQuiet: gatherQuiet},
	} {
		w, now := newWriter(), time.Duration(0)
		feed(w, &now, tc.every, tc.n)
		lastSync := now - tc.sinceSync
		until, quiet, busy := w.gatherUntil(now, lastSync, tc.last)
		// The moving average only approaches the gap: within 1 µs.
		if busy != tc.want || (busy && (until-lastSync != tc.wantWindow || (quiet-tc.wantQuiet).Abs() > time.Microsecond)) {
			t.Errorf("%s: mean gap %v: gather %v until +%v after the last fsync (quiet %v), want %v until +%v (quiet %v)",
				tc.name, time.Duration(w.meanGap.Load()), busy, until-lastSync, quiet, tc.want, tc.wantWindow, tc.wantQuiet)
		}
	}

	// A fast partition that falls idle for a few seconds is not busy when
	// its next record comes.
	w, now := newWriter(), time.Duration(0)
	feed(w, &now, 400*time.Microsecond, 500)
	feed(w, &now, 5*time.Second, 1)
	if _, _, busy := w.gatherUntil(now, now-fsync, 4); busy {
		t.Errorf("after 5 s idle (mean gap %v) the partition paces its fsyncs", time.Duration(w.meanGap.Load()))
	}
}
