package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/core/txns"
	"github.com/tributary-io/tributary/internal/testkit"
)

// consumeAll reads topic from the start with the given isolation until it
// has want records (or fails the test after a while), and returns the values.
func consumeAll(t *testing.T, addr, topic string, want int, committed bool) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl := newClient(t, addr, kgo.SeedBrokers(strings.Split(addr, ",")...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(iso),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %s (committed=%v): %d of %d records: %v", topic, committed, len(got), want, got)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

// produceTxn runs one transaction of values and commits or aborts it.
func produceTxn(t *testing.T, cl *kgo.Client, topic string, commit bool, values ...string) {
	t.Helper()
	ctx := ctxT(t)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	end := kgo.TryAbort
	if commit {
		end = kgo.TryCommit
	}
	if err := cl.EndTransaction(ctx, end); err != nil {
		t.Fatalf("end transaction (commit=%v): %v", commit, err)
	}
}

// Committed transactions are visible to read_committed consumers, aborted
// ones are not (the records stay in the log, read_uncommitted sees them),
// and an open transaction holds the LSO until it ends.
func TestTransactionsReadCommitted(t *testing.T) {
	t.Parallel()
	srv, admin := startWithTopics(t, 1, "tx")
	cl := newClient(t, srv.Addr(), kgo.TransactionalID("rc"))
	produceTxn(t, cl, "tx", true, "c1", "c2")
	produceTxn(t, cl, "tx", false, "a1", "a2")
	produceTxn(t, cl, "tx", true, "c3")

	if got := consumeAll(t, srv.Addr(), "tx", 3, true); !slices.Equal(got, []string{"c1", "c2", "c3"}) {
		t.Fatalf("read_committed: %v", got)
	}
	if got := consumeAll(t, srv.Addr(), "tx", 5, false); !slices.Equal(got, []string{"c1", "c2", "a1", "a2", "c3"}) {
		t.Fatalf("read_uncommitted: %v", got)
	}

	// An open transaction: its records are past the LSO.
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctxT(t), &kgo.Record{Topic: "tx", Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(admin)
	// DescribeProducers names where the open transaction starts (how
	// kafka-transactions.sh finds hanging transactions).
	dp, err := adm.DescribeProducers(ctxT(t), kadm.TopicsSet{"tx": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	dp.EachProducer(func(p kadm.DescribedProducer) {
		if p.CurrentTxnStartOffset != 8 {
			t.Errorf("producer %d: current transaction starts at %d, want 8", p.ProducerID, p.CurrentTxnStartOffset)
		}
	})
	end := func(committed bool) int64 {
		var offs kadm.ListedOffsets
		var err error
		if committed {
			offs, err = adm.ListCommittedOffsets(ctxT(t), "tx")
		} else {
			offs, err = adm.ListEndOffsets(ctxT(t), "tx")
		}
		if err != nil {
			t.Fatal(err)
		}
		o, _ := offs.Lookup("tx", 0)
		return o.Offset
	}
	p, err := srv.partition("tx", 0)
	if err != nil {
		t.Fatal(err)
	}
	// c1 c2 +commit, a1 a2 +abort, c3 +commit = 8; "open" is at 8.
	if lso, hw := end(true), end(false); lso != 8 || hw != 9 || p.LastStableOffset() != 8 {
		t.Fatalf("with an open transaction: read_committed end %d, end %d; want 8, 9", lso, hw)
	}
	if err := cl.EndTransaction(ctxT(t), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// EndTxn answers once the decision is durable, before the markers (as
	// Kafka does): the end read_committed sees moves to 10 once the commit
	// marker is in, and never anywhere else.
	testkit.Eventually(t, 10*time.Second, "read_committed end at 10 after the commit", func() bool {
		lso := end(true)
		if lso != 8 && lso != 10 {
			t.Fatalf("after commit: read_committed end %d, want 8 then 10", lso)
		}
		return lso == 10
	})
	if got := consumeAll(t, srv.Addr(), "tx", 4, true); got[3] != "open" {
		t.Fatalf("read_committed after the last commit: %v", got)
	}
}

// A second instance with the same transactional id fences the first: its
// ongoing transaction is aborted and its next write is refused.
func TestTransactionsFencing(t *testing.T) {
	t.Parallel()
	srv, _ := startWithTopics(t, 1, "fence")
	old := newClient(t, srv.Addr(), kgo.TransactionalID("f"))
	if err := old.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := old.ProduceSync(ctxT(t), &kgo.Record{Topic: "fence", Value: []byte("zombie")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fresh := newClient(t, srv.Addr(), kgo.TransactionalID("f"))
	produceTxn(t, fresh, "fence", true, "fresh")
	err := old.ProduceSync(ctxT(t), &kgo.Record{Topic: "fence", Value: []byte("zombie2")}).FirstErr()
	if err == nil {
		err = old.EndTransaction(ctxT(t), kgo.TryCommit)
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("zombie producer: %v", err)
	}
	if got := consumeAll(t, srv.Addr(), "fence", 1, true); !slices.Equal(got, []string{"fresh"}) {
		t.Fatalf("read_committed: %v", got)
	}
}

// A transaction left open is aborted after its timeout, also across a
// broker restart; DescribeTransactions and ListTransactions show it.
func TestTransactionsTimeoutAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(dir)
	srv := startServer(t, cfg)
	createTopic(t, newClient(t, srv.Addr()), "to", 1, nil)
	cl := newClient(t, srv.Addr(), kgo.TransactionalID("slow"), kgo.TransactionTimeout(2*time.Second))
	produceTxn(t, cl, "to", true, "kept")
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctxT(t), &kgo.Record{Topic: "to", Value: []byte("left open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(newClient(t, srv.Addr()))
	d, err := adm.DescribeTransactions(ctxT(t), "slow")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := d.On("slow", nil); s.State != "Ongoing" || len(s.Topics["to"]) != 1 {
		t.Fatalf("describe: %+v", s)
	}
	cl.Close()

	// Restart: the open transaction comes back and still times out.
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.KafkaAddr = srv.Addr()
	srv = startServer(t, cfg)
	adm = kadm.NewClient(newClient(t, srv.Addr()))
	testkit.Eventually(t, 15*time.Second, "open transaction aborted", func() bool {
		l, err := adm.ListTransactions(context.Background(), nil, []string{"CompleteAbort"})
		return err == nil && len(l) == 1
	})
	p, err := srv.partition("to", 0)
	if err != nil {
		t.Fatal(err)
	}
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != hw {
		t.Fatalf("after the timeout abort: LSO %d, HW %d", lso, hw)
	}
	if got := consumeAll(t, srv.Addr(), "to", 1, true); !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("read_committed: %v", got)
	}
}

// kgo's GroupTransactSession: consume, transform, produce and commit the
// consumed offsets in one transaction; an aborted round is re-consumed, and
// the output holds every input exactly once.
func TestTransactionsGroupSession(t *testing.T) {
	t.Parallel()
	srv, _ := startWithTopics(t, 3, "in", "out")
	txnSession(t, []string{srv.Addr()}, "in", "out")
}

// txnSession runs the consume-transform-produce loop against seeds, from
// topic in (3 partitions, filled here) to out.
func txnSession(t *testing.T, seeds []string, in, out string) {
	const n = 300
	admin := newClient(t, seeds[0], kgo.SeedBrokers(seeds...))
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: in, Key: []byte(fmt.Sprint(i % 7)), Value: []byte(fmt.Sprint(i))})
	}
	for i := 0; i < n; i += 10 { // small batches, so rounds are small
		if err := admin.ProduceSync(ctxT(t), recs[i:i+10]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	consumed, rounds, aborted := 0, 0, 0
	// Two sessions one after the other: the second starts from the offsets
	// the first committed in its transactions, so a lost or early offset
	// commit shows up as a duplicate or a gap in the output.
	for _, stopAt := range []int{n / 2, n} {
		sess, err := kgo.NewGroupTransactSession(
			kgo.SeedBrokers(seeds...),
			kgo.TransactionalID("ctp"),
			kgo.ConsumerGroup("ctp-group"),
			kgo.ConsumeTopics(in),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxWait(200*time.Millisecond),
			kgo.FetchMaxPartitionBytes(100), // a batch per partition a round
		)
		if err != nil {
			t.Fatal(err)
		}
		for consumed < stopAt {
			fs := sess.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("after %d rounds: consumed %d of %d", rounds, consumed, n)
			}
			fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
			if err := sess.Begin(); err != nil {
				t.Fatalf("begin: %v", err)
			}
			got := 0
			fs.EachRecord(func(r *kgo.Record) {
				got++
				sess.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: []byte("x" + string(r.Value))}, func(_ *kgo.Record, err error) {
					if err != nil && !errors.Is(err, kgo.ErrAborting) {
						t.Errorf("produce: %v", err)
					}
				})
			})
			rounds++
			// Every third round with records is aborted: it must come again.
			abort := got > 0 && rounds%3 == 0
			committed, err := sess.End(ctx, kgo.TransactionEndTry(!abort))
			if err != nil {
				t.Fatalf("end round %d: %v", rounds, err)
			}
			if committed {
				consumed += got
			} else if got > 0 {
				aborted++
			}
		}
		sess.Close()
	}
	if aborted == 0 {
		t.Fatalf("no round was aborted in %d rounds", rounds)
	}
	vals := consumeAll(t, seeds[0], out, n, true)
	seen := map[string]int{}
	for _, v := range vals {
		seen[v]++
	}
	for i := range n {
		if c := seen[fmt.Sprint("x", i)]; c != 1 {
			t.Fatalf("output record x%d seen %d times (%d rounds, %d aborted)", i, c, rounds, aborted)
		}
	}
	t.Logf("%d rounds, %d aborted, %d output records read committed", rounds, aborted, len(vals))
}

// librdkafka (confluent-kafka-python): a transactional producer commits and
// aborts, and a read_committed consumer sees only the committed records.
func TestTransactionsLibrdkafka(t *testing.T) {
	t.Parallel()
	srv, _ := startWithTopics(t, 2, "rdk")
	librdkafkaTxns(t, srv.Addr(), "rdk")
}

func librdkafkaTxns(t *testing.T, bootstrap, topic string) {
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = "python3"
	}
	out := runClient(t, []string{py, "-c", "import confluent_kafka"}, py, "testdata/confluent_transactions.py", bootstrap, topic)
	t.Logf("confluent-kafka: %s", out)
	if !strings.Contains(out, "committed=[c0 c1 c2 c3 c4 d0 d1 d2 d3 d4]") {
		t.Fatalf("librdkafka transactions: %s", out)
	}
	// And kgo reading what librdkafka wrote agrees.
	got := consumeAll(t, bootstrap, topic, 10, true)
	slices.Sort(got)
	if strings.Join(got, " ") != "c0 c1 c2 c3 c4 d0 d1 d2 d3 d4" {
		t.Fatalf("kgo read_committed of librdkafka's transactions: %v", got)
	}
}

// Three brokers: the consume-transform-produce loop works with partitions,
// groups and transactional ids spread over the brokers (markers through
// WriteTxnMarkers); and when the coordinator of an open transaction is
// stopped like a crash, the new coordinator replays the state from the
// offsets topic and aborts it after its timeout, so no partition is left
// with a hanging transaction.
func TestTransactionsCluster(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	for _, topic := range []string{"cin", "cout", "hang"} {
		createReplicatedTopic(t, tb.addrs()[0], topic, 3, 3, 2)
		tb.waitTopic(topic)
	}
	txnSession(t, tb.addrs(), "cin", "cout")
	t.Run("librdkafka", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: TestTransactionsLibrdkafka runs librdkafka against one broker")
		}
		createReplicatedTopic(t, tb.addrs()[0], "crdk", 2, 3, 2)
		tb.waitTopic("crdk")
		librdkafkaTxns(t, strings.Join(tb.addrs(), ","), "crdk")
	})

	cl := newClient(t, tb.addrs()[0], kgo.SeedBrokers(tb.addrs()...), kgo.TransactionalID("doomed"),
		kgo.TransactionTimeout(3*time.Second), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTxn(t, cl, "hang", true, "before")
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		if err := cl.ProduceSync(ctxT(t), &kgo.Record{Topic: "hang", Partition: p, Value: []byte("doomed")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	part := cluster.CoordinatorPartition("doomed", 3)
	coord := tb.srvs[0].Cluster().Metadata().Topics[cluster.OffsetsTopic].Partitions[part].Leader
	cl.Close()
	if err := tb.byID(coord).Close(); err != nil {
		t.Fatalf("stop coordinator %d: %v", coord, err)
	}
	var rest []*Server
	for _, s := range tb.srvs {
		if s.cfg.NodeID != coord {
			rest = append(rest, s)
		}
	}
	tb.waitFor("open transaction aborted by the new coordinator", 60*time.Second, func() bool {
		for _, s := range rest {
			if t, ok := s.txns.Describe("doomed"); ok && t.State == txns.CompleteAbort && s.txnOwner("doomed") == 0 {
				return true
			}
		}
		return false
	})
	tb.waitFor("every partition stable", 30*time.Second, func() bool {
		for p := range int32(3) {
			stable := false
			for _, s := range rest {
				if pp, err := s.partition("hang", p); err == nil {
					stable = pp.LastStableOffset() == pp.HighWatermark()
				}
			}
			if !stable {
				return false
			}
		}
		return true
	})
	got := consumeAll(t, rest[0].Addr(), "hang", 1, true)
	if !slices.Equal(got, []string{"before"}) {
		t.Fatalf("read_committed after the coordinator crash: %v", got)
	}
}

// TxnOffsetCommit names its consumer (KIP-447): a member of an older
// generation is refused.
func TestTxnOffsetCommitFencesOldGeneration(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.Groups.InitialRebalanceDelay = -1
	srv := startServer(t, cfg)
	admin := newClient(t, srv.Addr())
	createTopic(t, admin, "zin", 1, nil)
	cons := newClient(t, srv.Addr(), kgo.ConsumerGroup("zg"), kgo.ConsumeTopics("zin"))
	var gen int32
	var member string
	testkit.Eventually(t, 15*time.Second, "consumer joined", func() bool {
		pctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		cons.PollRecords(pctx, 0) // joins the group on the way
		cancel()
		m, g := cons.GroupMetadata()
		member, gen = m, g
		return g > 0
	})
	r := srv.txns.InitProducerID(context.Background(), "z", 60000, -1, -1)
	if code := srv.txns.Add(context.Background(), "z", r.ProducerID, r.Epoch, nil, []string{"zg"}); code != 0 {
		t.Fatal(code)
	}
	commit := func(generation int32) int16 {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.Version, req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = 3, "z", "zg", r.ProducerID, r.Epoch
		req.Generation, req.MemberID = generation, member
		req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "zin", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}
		resp, err := req.RequestWith(ctxT(t), admin)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := commit(gen - 1); code != kerr.IllegalGeneration.Code {
		t.Fatalf("zombie generation %d: error %d, want ILLEGAL_GENERATION", gen-1, code)
	}
	if code := commit(gen); code != 0 {
		t.Fatalf("current generation: error %d", code)
	}
}

// An idle transactional id expires: DescribeTransactions stops knowing it,
// and a restart (which replays the state log) does not bring it back.
func TestTransactionalIDExpires(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Transactions.IDExpiration = 300 * time.Millisecond
	srv := startServer(t, cfg)
	createTopic(t, newClient(t, srv.Addr()), "exp", 1, nil)
	cl := newClient(t, srv.Addr(), kgo.TransactionalID("short-lived"))
	produceTxn(t, cl, "exp", true, "one")
	cl.Close()
	adm := kadm.NewClient(newClient(t, srv.Addr()))
	known := func() bool {
		l, err := adm.ListTransactions(context.Background(), nil, nil)
		if err != nil {
			t.Fatalf("list transactions: %v", err)
		}
		return slices.Contains(l.TransactionalIDs(), "short-lived")
	}
	if !known() {
		t.Fatal("the id is not listed right after its commit")
	}
	testkit.Eventually(t, 15*time.Second, "idle id expired", func() bool { return !known() })

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.KafkaAddr = srv.Addr()
	cfg.Transactions.IDExpiration = time.Hour // nothing may expire it again
	srv = startServer(t, cfg)
	adm = kadm.NewClient(newClient(t, srv.Addr()))
	testkit.Eventually(t, 15*time.Second, "offsets partitions loaded", func() bool {
		_, err := adm.ListTransactions(context.Background(), nil, nil)
		return err == nil
	})
	if known() {
		t.Fatal("the expired id came back after a restart")
	}
	if got := consumeAll(t, srv.Addr(), "exp", 1, true); !slices.Equal(got, []string{"one"}) {
		t.Fatalf("read_committed after expiry: %v", got)
	}
}
