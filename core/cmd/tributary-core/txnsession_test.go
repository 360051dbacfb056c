package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestClusterGroupSessionKills runs a franz-go GroupTransactSession
// consume-transform-produce loop from one topic to another on three broker
// processes. In one round the transaction coordinator is SIGKILLed after
// the transaction's records are written and before it ends; in another the
// group coordinator (or, if both coordinators are one broker, a leader of
// the output topic); in a third a leader of the output topic that is not
// the transaction coordinator. Each victim is restarted after the
// transaction ends. Every
// third transaction is aborted on purpose. Output records carry the round
// that wrote them: read_committed must show every input record exactly
// once and nothing written by a round that aborted.
func TestClusterGroupSessionKills(t *testing.T) {
	bs, addrs := startProcCluster(t) // skips under -short
	ctx := testkit.Context(t, 120*time.Second)
	const in, out, parts, n = "ctpin", "ctpout", 3, 600
	const txnID, group = "ctp-kills", "ctp-kills-group"
	createTopicWhenFormed(ctx, t, addrs, in, parts)
	createTopicWhenFormed(ctx, t, addrs, out, parts)

	admCl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: in, Key: []byte(strconv.Itoa(i % 7)), Value: []byte(strconv.Itoa(i))})
	}
	for i := 0; i < n; i += 10 { // small batches, so a round is a few of them
		if err := admCl.ProduceSync(ctx, recs[i:i+10]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	newSession := func() *kgo.GroupTransactSession {
		sess, err := kgo.NewGroupTransactSession(
			kgo.SeedBrokers(addrs...),
			kgo.TransactionalID(txnID),
			kgo.TransactionTimeout(10*time.Second),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(in),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxWait(200*time.Millisecond),
			kgo.FetchMaxPartitionBytes(100), // about a batch per partition a round
		)
		if err != nil {
			t.Fatal(err)
		}
		return sess
	}
	sess := newSession()
	defer func() { sess.Close() }()

	// Kills happen in the rounds named here, once the round has produced
	// and before it ends.
	kills := map[int]string{4: "transaction coordinator", 12: "group coordinator", 20: "output leader"}
	wantKills := len(kills)
	var killed []string
	abortedRounds := map[int]bool{}
	consumed, rounds, unknown := 0, 0, 0
	for consumed < n {
		fs := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("after %d rounds: consumed %d of %d, kills %v", rounds, consumed, n, killed)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("round %d: fetch: %v", rounds, err) })
		if err := sess.Begin(); err != nil {
			t.Fatalf("round %d: begin: %v", rounds, err)
		}
		rounds++
		got := 0
		fs.EachRecord(func(r *kgo.Record) {
			got++
			v := fmt.Sprintf("%s/%d", r.Value, rounds)
			sess.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: []byte(v)}, func(_ *kgo.Record, err error) {
				if err != nil && !errors.Is(err, kgo.ErrAborting) {
					t.Logf("round %d: produce: %v", rounds, err)
				}
			})
		})
		var victim *testkit.CoreProc
		if role, ok := kills[rounds]; ok && got > 0 {
			// The round's records are in the logs, its transaction open.
			if err := sess.Client().Flush(ctx); err != nil {
				t.Fatalf("round %d: flush: %v", rounds, err)
			}
			victim = bs[pickVictim(ctx, t, admCl, addrs, role, txnID, group, out)-1]
			killed = append(killed, fmt.Sprintf("round %d: %s (broker %d)", rounds, role, victim.ID))
			victim.Stop(syscall.SIGKILL)
		} else if ok {
			kills[rounds+1] = role // nothing fetched this round: kill in the next
		}
		abort := got > 0 && rounds%3 == 0
		committed, err := sess.End(ctx, kgo.TransactionEndTry(!abort))
		switch {
		case err != nil:
			// The outcome is not known to the client. A new session
			// with the same transactional ID fences this one and starts
			// from the offsets committed in transactions, so the output
			// check below still holds either way.
			t.Logf("round %d: end: %v; starting a new session", rounds, err)
			unknown++
			sess.Close()
			sess = newSession()
		case committed:
			consumed += got
		default:
			abortedRounds[rounds] = true
		}
		if victim != nil {
			killed[len(killed)-1] += fmt.Sprintf(" → committed=%v err=%v", committed, err)
			victim.Start(t)
			await(ctx, t, func() bool { return testkit.InSync(ctx, addrs, 3, in, out, "__consumer_offsets") },
				func() string {
					return fmt.Sprintf("round %d: replicas never back in sync after restarting broker %d", rounds, victim.ID)
				})
		}
	}
	if len(killed) != wantKills {
		t.Fatalf("only %d kills happened: %v", len(killed), killed)
	}
	if len(abortedRounds) == 0 {
		t.Fatalf("no round was aborted in %d rounds", rounds)
	}

	cons := newReader(t, addrs, out, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer cons.Close()
	seen := map[string][]string{} // input value -> output values
	total := 0
	poll := func() {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		defer pcancel()
		cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			src, _, _ := strings.Cut(string(r.Value), "/")
			seen[src] = append(seen[src], string(r.Value))
			total++
		})
	}
	for deadline := time.Now().Add(30 * time.Second); len(seen) < n && time.Now().Before(deadline); {
		poll()
	}
	poll() // anything after the last expected record is a duplicate
	for i := range n {
		vs := seen[strconv.Itoa(i)]
		if len(vs) != 1 {
			t.Errorf("input record %d seen %d times in the output: %v", i, len(vs), vs)
			continue
		}
		_, r, _ := strings.Cut(vs[0], "/")
		if round, _ := strconv.Atoi(r); abortedRounds[round] {
			t.Errorf("record %s from aborted round %d read committed", vs[0], round)
		}
	}
	t.Logf("%d rounds, %d aborted on purpose, %d ended with an error; kills: %v; %d output records read committed",
		rounds, len(abortedRounds), unknown, killed, total)
}

// pickVictim names the broker to kill for role: the transaction
// coordinator of txnID, the group coordinator of group, or a leader of
// topic; never the transaction coordinator for the last two.
func pickVictim(ctx context.Context, t *testing.T, cl *kgo.Client, addrs []string, role, txnID, group, topic string) int32 {
	t.Helper()
	txnCoord := findCoordinator(ctx, t, cl, txnCoordinator, txnID)
	if role == "transaction coordinator" {
		return txnCoord
	}
	if groupCoord := findCoordinator(ctx, t, cl, groupCoordinator, group); role == "group coordinator" && groupCoord != txnCoord {
		return groupCoord
	}
	st, err := testkit.PartitionStates(ctx, addrs, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st {
		if p.Leader != txnCoord {
			return p.Leader
		}
	}
	t.Fatalf("broker %d coordinates both and leads every partition of %s", txnCoord, topic)
	return 0
}
