package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestClusterTransactionKills runs three broker processes. In each round a
// transactional producer commits one transaction and leaves a second open
// on every partition, and a broker is SIGKILLed: in even rounds the
// transaction's coordinator, in odd rounds a partition leader that is not
// the coordinator. The open transaction must be aborted within its timeout
// (plus failure detection): no partition keeps a last stable offset below
// its high watermark. read_committed consumers see every committed record
// once and no aborted one.
func TestClusterTransactionKills(t *testing.T) {
	bs, addrs := startProcCluster(t) // skips under -short
	ctx := testkit.Context(t, 240*time.Second)
	const topic, parts = "txkills", 3
	const txnTimeout = 5 * time.Second
	createTopicWhenFormed(ctx, t, addrs, topic, parts)
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()

	var committed []string
	for round := range 4 {
		id := fmt.Sprintf("kill-%d", round)
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.TransactionalID(id), kgo.TransactionTimeout(txnTimeout),
			kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		txn := func(what string, commit bool) {
			if err := cl.BeginTransaction(); err != nil {
				t.Fatalf("round %d: begin: %v", round, err)
			}
			for p := range int32(parts) {
				v := fmt.Sprintf("%s-%d-%d", what, round, p)
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
					t.Fatalf("round %d: produce: %v", round, err)
				}
				if commit {
					committed = append(committed, v)
				}
			}
			if commit {
				if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
					t.Fatalf("round %d: commit: %v", round, err)
				}
			}
		}
		// Kill only once the broker restarted last is back in every ISR:
		// killing the only in-sync replica would (rightly) leave its
		// partitions without a leader until it returns.
		topics := []string{topic}
		if round > 0 { // the offsets topic exists once a coordinator was asked for
			topics = append(topics, "__consumer_offsets")
		}
		await(ctx, t, func() bool { return testkit.InSync(ctx, addrs, 3, topics...) },
			func() string { return fmt.Sprintf("round %d: replicas never back in sync", round) })
		txn("ok", true)
		txn("doomed", false) // left open

		coord := findCoordinator(ctx, t, admCl, txnCoordinator, id)
		victim := coord
		if round%2 == 1 {
			st, err := testkit.PartitionStates(ctx, addrs, topic)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range st {
				if p.Leader != coord {
					victim = p.Leader
					break
				}
			}
		}
		cl.Close() // the producer is gone too: nobody will end its transaction
		killed := time.Now()
		bs[victim-1].Stop(syscall.SIGKILL)
		var live []string
		for _, b := range bs {
			if b.ID != victim {
				live = append(live, b.Addr)
			}
		}
		liveCl, err := kgo.NewClient(kgo.SeedBrokers(live...))
		if err != nil {
			t.Fatal(err)
		}
		liveAdm := kadm.NewClient(liveCl)
		await(ctx, t, func() bool { return stable(ctx, liveAdm, topic, parts) && aborted(ctx, liveAdm, id) },
			func() string {
				return fmt.Sprintf("round %d: transaction %s still hanging after killing broker %d", round, id, victim)
			})
		took := time.Since(killed)
		liveCl.Close()
		role := "coordinator"
		if round%2 == 1 {
			role = "partition leader"
		}
		t.Logf("round %d: killed broker %d (%s); open transaction aborted and every LSO at its HW after %v",
			round, victim, role, took.Round(100*time.Millisecond))
		if limit := txnTimeout + 10*time.Second; took > limit {
			t.Errorf("round %d: took %v, more than the transaction timeout plus failure detection (%v)", round, took, limit)
		}
		bs[victim-1].Start(t)
	}

	// read_committed: every committed record once, nothing aborted.
	got := checkReadCommitted(ctx, t, addrs, topic, committed, time.Second, "after the kills")
	for _, v := range got {
		if strings.HasPrefix(v, "doomed") {
			t.Fatalf("aborted record %s read committed", v)
		}
	}
}

// The coordinator types of a FindCoordinator request.
const groupCoordinator, txnCoordinator int8 = 0, 1

// findCoordinator asks until the cluster names the coordinator of key, a
// group or a transactional id as typ says (right after a broker restarts
// it may answer COORDINATOR_NOT_AVAILABLE).
func findCoordinator(ctx context.Context, t *testing.T, cl *kgo.Client, typ int8, key string) int32 {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey, req.CoordinatorType = key, typ
	var resp *kmsg.FindCoordinatorResponse
	var err error
	await(ctx, t, func() bool {
		resp, err = req.RequestWith(ctx, cl)
		return err == nil && resp.ErrorCode == 0
	}, func() string { return fmt.Sprintf("find coordinator of %s: %v %+v", key, err, resp) })
	return resp.NodeID
}

// restartUntilStable starts the broker again and waits until no
// transaction holds a partition's LSO below its high watermark (an open
// one ends at its timeout); failing at ctx's end.
func restartUntilStable(ctx context.Context, t *testing.T, args, addr, topic string, parts int) {
	t.Helper()
	startProcess(t, args, addr)
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	await(ctx, t, func() bool { return stable(ctx, adm, topic, parts) },
		func() string {
			return "a transaction still holds a partition's LSO below its high watermark after the restart"
		})
}

// stable reports whether every partition's read_committed end (the LSO)
// has reached its high watermark.
func stable(ctx context.Context, adm *kadm.Client, topic string, parts int) bool {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	hw, err1 := adm.ListEndOffsets(rctx, topic)
	lso, err2 := adm.ListCommittedOffsets(rctx, topic)
	if err1 != nil || err2 != nil || hw.Error() != nil || lso.Error() != nil {
		return false
	}
	for p := range int32(parts) {
		h, ok1 := hw.Lookup(topic, p)
		l, ok2 := lso.Lookup(topic, p)
		if !ok1 || !ok2 || h.Offset != l.Offset {
			return false
		}
	}
	return true
}

func aborted(ctx context.Context, adm *kadm.Client, id string) bool {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d, err := adm.DescribeTransactions(rctx, id)
	if err != nil {
		return false
	}
	s, err := d.On(id, nil)
	return err == nil && s.Err == nil && s.State == "CompleteAbort"
}

// TestKillNineMidTransaction SIGKILLs a single broker while transactions
// run: committed ones, an aborted one, and one left open with records
// on every partition. After the restart the open transaction (its state
// and the logs' transaction index rebuilt from disk) is aborted within its
// timeout and read_committed sees exactly the committed records.
func TestKillNineMidTransaction(t *testing.T) {
	args, addr := loneBroker(t)
	broker := startProcess(t, args, addr)
	ctx := testkit.Context(t, 90*time.Second)
	const topic = "crashtx"
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("crash"), kgo.TransactionTimeout(4*time.Second),
		kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	var committed []string
	txn := func(name string, end kgo.TransactionEndTry) {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for p := range int32(3) {
			v := fmt.Sprintf("%s-%d", name, p)
			if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if end == kgo.TryCommit {
				committed = append(committed, v)
			}
		}
		if name != "open" {
			if err := cl.EndTransaction(ctx, end); err != nil {
				t.Fatal(err)
			}
		}
	}
	txn("c1", kgo.TryCommit)
	txn("a1", kgo.TryAbort)
	txn("c2", kgo.TryCommit)
	txn("open", kgo.TryAbort)
	_ = broker.Process.Kill()
	_ = broker.Wait()
	cl.Close()
	restarted := time.Now()
	restartUntilStable(ctx, t, args, addr, topic, 3)
	t.Logf("open transaction aborted %v after the restart (timeout 4 s)", time.Since(restarted).Round(100*time.Millisecond))
	checkReadCommitted(ctx, t, []string{addr}, topic, committed, testkit.Watch(2*time.Second), "after kill -9")
}

// checkReadCommitted reads topic from its start, read_committed, until it
// has as many records as committed (or 30 s pass), then for linger longer
// for anything that must not be there. Unless what it read is committed
// exactly, it fails the test, saying when. It returns what it read, sorted.
func checkReadCommitted(ctx context.Context, t *testing.T, addrs []string, topic string, committed []string, linger time.Duration, when string) []string {
	t.Helper()
	cons := newReader(t, addrs, topic, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer cons.Close()
	var got []string
	poll := func() {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		pcancel()
	}
	for end := time.Now().Add(30 * time.Second); len(got) < len(committed) && time.Now().Before(end); {
		poll()
	}
	for end := time.Now().Add(linger); time.Now().Before(end); {
		poll()
	}
	slices.Sort(got)
	slices.Sort(committed)
	if !slices.Equal(got, committed) {
		t.Fatalf("read_committed %s:\n got %v\nwant %v", when, got, committed)
	}
	return got
}
