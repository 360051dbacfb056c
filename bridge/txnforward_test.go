package bridge

import (
	"context"
	"math/rand/v2"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// childTxnEnv makes the SIGKILL child forward in exactly-once Kafka mode.
const childTxnEnv = "TRIBUTARY_BRIDGE_TEST_TXN"

// The foreign Kafka clusters the exactly-once mode is tested against:
// franz-go's kfake (which implements transactions) and a Tributary core
// spoken to as plain Kafka.
var txnTargets = []struct {
	name  string
	start func(t *testing.T) string
}{
	{"kfake", func(t *testing.T) string {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c.ListenAddrs()[0]
	}},
	{"core", func(t *testing.T) string {
		_, addr := startCore(t)
		return addr
	}},
}

func exactlyOnceConfig(addrs ...string) Config {
	cfg := testBridgeConfig(addrs...)
	cfg.Target, cfg.ExactlyOnce = TargetKafka, true
	cfg.TransactionTimeout = 10 * time.Second
	return cfg
}

// judgeCommitted reads topic read_committed until every wanted reading is
// there (or a while passes), and a moment longer for duplicates.
func judgeCommitted(t testing.TB, addr, topic string, want map[string]uint64) verdict {
	t.Helper()
	var total int
	for _, n := range want {
		total += int(n)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	j := newJudge(nil)
	deadline := time.Now().Add(30 * time.Second)
	var extra time.Time
	for {
		if j.v.records >= total && extra.IsZero() {
			extra = time.Now().Add(time.Second)
		}
		if (!extra.IsZero() && time.Now().After(extra)) || time.Now().After(deadline) {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(j.add)
	}
	return j.finish(want)
}

func mustExactlyOnce(t testing.TB, v verdict) {
	t.Helper()
	if v.lost != 0 || v.duplicated != 0 || v.outOfOrder != 0 || v.unexpected != 0 {
		t.Fatalf("target topic read_committed: lost=%d duplicated=%d out-of-order=%d unexpected=%d (records %d)",
			v.lost, v.duplicated, v.outOfOrder, v.unexpected, v.records)
	}
	t.Logf("verified %d records read_committed: lost=0 duplicated=0 out-of-order=0", v.records)
}

// eachTxnTarget runs test against each of txnTargets, as parallel subtests.
func eachTxnTarget(t *testing.T, test func(t *testing.T, addr string)) {
	for _, tg := range txnTargets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			test(t, tg.start(t))
		})
	}
}

// The bridge forwards into a foreign Kafka in transactions, restarted
// (cancelled) in the middle several times; the target ends up with every
// reading exactly once, and holds the cursor in its cursor topic.
func TestExactlyOnceIntoKafka(t *testing.T) {
	t.Parallel()
	eachTxnTarget(t, func(t *testing.T, addr string) {
		e := openEdge(t, t.TempDir(), 2)
		in := e.startIngest(devices("eo", 4), nil, 20, 5*time.Millisecond)
		cfg := exactlyOnceConfig(addr)
		for range 3 {
			rb := startBridge(t, cfg, e)
			testkit.Eventually(t, 20*time.Second, "records forwarded", func() bool {
				st := rb.Status()
				return len(st.Partitions) == 2 && st.Partitions[0].Cursor > 0 && st.Partitions[1].Cursor > 0
			})
			time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond)
			rb.stop()
		}
		want := in.stop(t)
		rb := startBridge(t, cfg, e)
		rb.waitCaughtUp(t, 30*time.Second)
		mustExactlyOnce(t, judgeCommitted(t, addr, stream, want))
		for p := int32(0); p < 2; p++ {
			l, _ := e.topics.Partition(stream, p)
			key := rb.source() + "/" + stream + "/" + strconv.Itoa(int(p))
			if got, want := targetCursor(t, addr, DefaultCursorTopic, key), l.NextOffset(); got != want {
				t.Fatalf("cursor %s in the target = %d, edge log end %d", key, got, want)
			}
		}
	})
}

// targetCursor reads a committed cursor from the target as the bridge does.
func targetCursor(t *testing.T, addr, topic, key string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	b := &Bridge{cfg: Config{CursorTopic: topic, RequestTimeout: 5 * time.Second}}
	v, ok, err := b.readTxnCursor(context.Background(), cl, key)
	if err != nil || !ok {
		t.Fatalf("read cursor %s: %v %v", key, ok, err)
	}
	return v
}

// The edge process forwarding in exactly-once Kafka mode is killed with
// SIGKILL at random moments, ten times; a final run drains the rest. The
// target holds every reading exactly once (read_committed), against kfake
// and against the core.
func TestExactlyOnceSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, tg := range txnTargets {
		t.Run(tg.name, func(t *testing.T) {
			addr := tg.start(t)
			adm := newKafkaClient(t, []string{addr})
			// Records the target holds (committed or not): progress.
			written := func() int64 {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, stream)
				if err != nil {
					return 0
				}
				var n int64
				ends.Each(func(o kadm.ListedOffset) { n += max(o.Offset, 0) })
				return n
			}
			dir := t.TempDir()
			prev := killChildTenTimes(t, []string{childEnv + "=1", childDirEnv + "=" + dir, childCoreEnv + "=" + addr, childTxnEnv + "=1"},
				200*time.Millisecond, "in the target", written)
			e := openEdge(t, dir, 2)
			want, err := scanDevices(e)
			if err != nil {
				t.Fatal(err)
			}
			cfg := exactlyOnceConfig(addr)
			cfg.EdgeID = killEdgeID
			rb := startBridge(t, cfg, e)
			rb.waitCaughtUp(t, 60*time.Second)
			t.Logf("edge log holds %v readings after 10 kills; target had %d records (committed or aborted) before the drain", want, prev)
			mustExactlyOnce(t, judgeCommitted(t, addr, stream, want))
		})
	}
}

// committedRecords drops exactly the records of aborted transactions.
func TestCommittedRecords(t *testing.T) {
	t.Parallel()
	var log []byte
	off := int64(0)
	add := func(b []byte) {
		recordbatch.SetBaseOffset(b, off)
		h, _ := recordbatch.ParseHeader(b)
		recordbatch.SetCRC(b)
		off = h.NextOffset()
		log = append(log, b...)
	}
	txn := func(pid int64, vals ...string) []byte {
		var recs []recordbatch.Record
		for _, v := range vals {
			recs = append(recs, recordbatch.Record{Value: []byte(v)})
		}
		b, err := recordbatch.Build(recs, recordbatch.BuildOptions{ProducerID: pid, ProducerEpoch: 0, BaseSequence: 0, LeaderEpoch: -1, Attributes: recordbatch.TransactionalBit})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	marker := func(pid int64, commit bool) []byte {
		b, err := recordbatch.BuildMarker(pid, 0, commit, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	add(txn(1, "a1"))       // 0 aborted
	add(txn(2, "c1"))       // 1 committed
	add(marker(1, false))   // 2
	add(txn(1, "c2", "c3")) // 3-4 committed (a later transaction of pid 1)
	add(marker(2, true))    // 5
	add(marker(1, true))    // 6
	aborted := []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 1, FirstOffset: 0}}
	var got []string
	next, err := committedRecords(log, aborted, func(r recordbatch.Record) { got = append(got, string(r.Value)) })
	if err != nil || next != 7 {
		t.Fatalf("next %d, err %v", next, err)
	}
	if len(got) != 3 || got[0] != "c1" || got[1] != "c2" || got[2] != "c3" {
		t.Fatalf("committed records: %v", got)
	}
}

// committedRecords parses what a broker sends: it must fail cleanly.
func FuzzCommittedRecords(f *testing.F) {
	b, _ := recordbatch.BuildMarker(1, 0, true, 0, 0)
	f.Add(b, int64(1), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, pid, first int64) {
		_, _ = committedRecords(b, []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: pid, FirstOffset: first}}, func(recordbatch.Record) {})
	})
}

// A 3-broker core (processes) is the exactly-once target; while the edge
// ingests and forwards, a broker is SIGKILLed and restarted three times:
// the leader of a data partition, the leader of the cursor topic, and the
// coordinator of a forwarder's transactional id. Forwarding resumes each
// time and the target ends with every reading exactly once (read_committed).
func TestExactlyOnceCoreClusterKills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-broker core as processes")
	}
	cluster := startBinaryCluster(t, 2)
	addrs := cluster.Addrs()
	ctx := testkit.Context(t, 180*time.Second)
	adm := kadm.NewClient(newKafkaClient(t, addrs))
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"cleanup.policy": kmsg.StringPtr("compact"), "min.insync.replicas": kmsg.StringPtr("2")}, DefaultCursorTopic); err != nil {
		t.Fatal(err)
	}

	e := openEdge(t, t.TempDir(), 2)
	cfg := exactlyOnceConfig(addrs...)
	cfg.RequestTimeout = 5 * time.Second
	rb := startBridge(t, cfg, e)
	in := e.startIngest(devices("ck", 4), map[string]uint64{}, 20, 10*time.Millisecond)
	t.Cleanup(func() { in.cancel(); <-in.done }) // before the edge closes, should the test fail
	testkit.Eventually(t, 60*time.Second, "forwarding to start", func() bool { return cursorOf(rb) > 200 })
	// A broker is killed only once the last one restarted is back in every ISR.
	fullISR := func() bool { return testkit.InSync(ctx, addrs, 3, stream, DefaultCursorTopic, "__consumer_offsets") }

	leaderOf := func(topic string) int32 {
		for {
			st, err := testkit.PartitionStates(ctx, addrs, topic)
			if err == nil && st[0].Leader > 0 {
				return st[0].Leader
			}
			if ctx.Err() != nil {
				t.Fatalf("no leader of %s: %v", topic, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	coordinatorOf := func(id string) int32 {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey, req.CoordinatorType = id, 1
		for {
			resp, err := req.RequestWith(ctx, newKafkaClient(t, addrs))
			if err == nil && resp.ErrorCode == 0 {
				return resp.NodeID
			}
			if ctx.Err() != nil {
				t.Fatalf("no coordinator of %s: %v", id, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	victims := []struct {
		what string
		id   func() int32
	}{
		{"data partition leader", func() int32 { return leaderOf(stream) }},
		{"cursor topic leader", func() int32 { return leaderOf(DefaultCursorTopic) }},
		{"transaction coordinator", func() int32 { return coordinatorOf("tributary-bridge/" + rb.EdgeID() + "/" + stream + "/0") }},
	}
	// Partition 0 is the one every victim serves.
	cursor0 := func() int64 { return rb.Status().Partitions[0].Cursor }
	for _, v := range victims {
		testkit.Eventually(t, 60*time.Second, "every replica in sync", fullISR)
		b := cluster.Brokers[v.id()-1]
		at := cursor0()
		killed := time.Now()
		b.Stop(syscall.SIGKILL)
		testkit.Eventually(t, 60*time.Second, "forwarding to resume after killing the "+v.what, func() bool { return cursor0() > at+100 })
		t.Logf("killed broker %d (%s): forwarding resumed after %v", b.ID, v.what, time.Since(killed).Round(100*time.Millisecond))
		b.Start(t)
	}
	want := in.stop(t)
	rb.waitCaughtUp(t, 60*time.Second)
	mustExactlyOnce(t, judgeCommitted(t, addrs[0], stream, want))
}

func newKafkaClient(t *testing.T, seeds []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// The cursor topic is shared by every partition's producer. Another
// producer's open transaction (an instance killed mid-transaction) sits in
// front of this producer's last committed cursor: the read must wait for it
// to end rather than stop at the last stable offset and return an older
// cursor (which re-sent what the target held: duplicates after SIGKILLs).
func TestReadTxnCursorWaitsForOthersOpenTransaction(t *testing.T) {
	t.Parallel()
	eachTxnTarget(t, func(t *testing.T, addr string) {
		const topic = "cursors"
		adm := newKafkaClient(t, []string{addr})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := kadm.NewClient(adm).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
		txnClient := func(id string) *kgo.Client {
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic),
				kgo.TransactionTimeout(20*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)
			return cl
		}
		// put writes key=value in a transaction, committed unless open.
		put := func(cl *kgo.Client, key, value string, open bool) {
			t.Helper()
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(key), Value: []byte(value)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if !open {
				if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
					t.Fatal(err)
				}
			}
		}
		a, other := txnClient("a"), txnClient("other")
		put(a, "a", "3", false)
		put(other, "other", "9", true)
		put(a, "a", "7", false)

		b := &Bridge{cfg: Config{CursorTopic: topic, RequestTimeout: 5 * time.Second}}
		type result struct {
			v     int64
			found bool
			err   error
		}
		done := make(chan result, 1)
		go func() {
			v, found, err := b.readTxnCursor(ctx, a, "a")
			done <- result{v, found, err}
		}()
		select {
		case r := <-done:
			t.Fatalf("cursor read returned %d (found %v, err %v) while another producer's transaction was open before the last commit", r.v, r.found, r.err)
		case <-time.After(300 * time.Millisecond):
		}
		if err := other.EndTransaction(ctx, kgo.TryAbort); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil || !r.found || r.v != 7 {
			t.Fatalf("cursor after the other transaction ended: %d found %v err %v, want 7", r.v, r.found, r.err)
		}
	})
}
