package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/testkit"
)

// groupLedger records who read what, and what was committed, across the
// members of one consumer group.
type groupLedger struct {
	mu        sync.Mutex
	readBy    map[string]map[string]bool // value -> members that read it
	committed map[string]bool
	owned     map[string]int // member -> partitions it owns now
	problems  []string
}

// own counts n partitions assigned to member (revoked, when negative).
func (l *groupLedger) own(member string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.owned[member] += n
}

// owning reports whether each of members owns a partition.
func (l *groupLedger) owning(members ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range members {
		if l.owned[m] == 0 {
			return false
		}
	}
	return true
}

func (l *groupLedger) read(member string, values []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range values {
		if l.committed[v] {
			l.problems = append(l.problems, fmt.Sprintf("%s re-read committed record %s", member, v))
		}
		if l.readBy[v] == nil {
			l.readBy[v] = map[string]bool{}
		}
		l.readBy[v][member] = true
	}
}

func (l *groupLedger) commit(values []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range values {
		l.committed[v] = true
	}
}

func (l *groupLedger) count(prefix string) (all int, byMember map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	byMember = map[string]int{}
	for v, members := range l.readBy {
		if len(v) >= len(prefix) && v[:len(prefix)] == prefix {
			all++
			for m := range members {
				byMember[m]++
			}
		}
	}
	return all, byMember
}

// TestConsumerGroupOfThree: three franz-go members split six partitions;
// one leaves and the other two take over its partitions without losing
// records or re-reading committed ones.
func TestConsumerGroupOfThree(t *testing.T) {
	t.Parallel()
	const partitions, perRound = 6, 600
	cfg := testConfig(t.TempDir())
	cfg.Groups.InitialRebalanceDelay = 200 * time.Millisecond
	srv := startServer(t, cfg)
	ctx := testkit.Context(t, 90*time.Second)

	producer := newClient(t, srv.Addr(), kgo.DefaultProduceTopic("grouped3"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	createTopic(t, producer, "grouped3", partitions, nil)
	produceRound := func(prefix string) {
		for i := 0; i < perRound; i++ {
			if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%s-%03d", prefix, i))}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
	ledger := &groupLedger{readBy: map[string]map[string]bool{}, committed: map[string]bool{}, owned: map[string]int{}}

	// join starts a member reading and committing; leave stops it and
	// closes its client, which leaves the group.
	join := func(name string) (leave func()) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()), kgo.ConsumerGroup("three"), kgo.ConsumeTopics("grouped3"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchMaxWait(200*time.Millisecond),
			kgo.ClientID(name),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { ledger.own(name, len(m["grouped3"])) }),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { ledger.own(name, -len(m["grouped3"])) }),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { ledger.own(name, -len(m["grouped3"])) }))
		if err != nil {
			t.Fatal(err)
		}
		mctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for mctx.Err() == nil {
				fs := cl.PollFetches(mctx)
				var values []string
				fs.EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
				if len(values) == 0 {
					continue
				}
				ledger.read(name, values)
				if err := cl.CommitRecords(mctx, fs.Records()...); err != nil {
					continue // a rebalance took the partitions: someone else re-reads them
				}
				ledger.commit(values)
			}
		}()
		return func() {
			stop()
			<-done
			cl.Close()
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if testkit.PollContext(ctx, cond) {
			return
		}
		all, by := ledger.count("")
		t.Fatalf("timed out waiting for %s (read %d, by member %v)", what, all, by)
	}

	members := map[string]func(){}
	for _, name := range []string{"a", "b", "c"} {
		members[name] = join(name)
	}
	defer func() {
		for _, leave := range members {
			leave()
		}
	}()
	// A member that joins after the first rebalance would find the first
	// round already read by the others.
	waitFor("the partitions spread over all three members", func() bool { return ledger.owning("a", "b", "c") })
	produceRound("one")
	waitFor("all three members to read the first round", func() bool {
		all, by := ledger.count("one-")
		return all == perRound && by["a"] > 0 && by["b"] > 0 && by["c"] > 0
	})

	// c leaves the group (LeaveGroup on close); a and b take over.
	leaveC := members["c"]
	delete(members, "c")
	leaveC()
	produceRound("two")
	waitFor("a and b to read the second round", func() bool {
		all, _ := ledger.count("two-")
		return all == perRound
	})
	_, by := ledger.count("two-")
	if by["c"] != 0 || by["a"] == 0 || by["b"] == 0 {
		t.Errorf("second round read by %v; want only a and b, both", by)
	}
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	for _, p := range ledger.problems {
		t.Error(p)
	}
}
