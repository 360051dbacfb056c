package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestKillNineDuringCommits SIGKILLs a lone broker at random moments while
// a transactional producer commits (and every fourth time aborts) small
// transactions over three partitions, five times over one data directory.
// A lone broker lets the producer's next transaction begin before the last
// one's markers are fsynced; whatever the moment of the kill, every
// transaction must end up whole or absent (all three records or none), a
// committed one present, an aborted one absent, and no partition's last
// stable offset stuck below its high watermark. (A SIGKILL keeps what the
// page cache holds, so the markers a power cut would lose, and their
// rewrite, are tested in core/txns and core/server.)
func TestKillNineDuringCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("five broker crashes")
	}
	args, addr := loneBroker(t)
	const topic, rounds = "killtx", 5
	ctx := testkit.Context(t, 180*time.Second)
	outcome := map[string]string{} // transaction -> committed, aborted, unknown
	var mu sync.Mutex
	for round := range rounds {
		broker := startProcess(t, args, addr)
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("killer"), kgo.TransactionTimeout(3*time.Second),
			kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RecordDeliveryTimeout(5*time.Second), kgo.RequestTimeoutOverhead(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ctx.Err() == nil; i++ {
				name := fmt.Sprintf("r%d-t%d", round, i)
				end := kgo.TryCommit
				if i%4 == 3 {
					end = kgo.TryAbort
				}
				mu.Lock()
				outcome[name] = "unknown"
				mu.Unlock()
				if cl.BeginTransaction() != nil {
					return
				}
				var recs []*kgo.Record
				for p := range int32(3) {
					recs = append(recs, &kgo.Record{Partition: p, Value: []byte(fmt.Sprintf("%s-p%d", name, p))})
				}
				if cl.ProduceSync(ctx, recs...).FirstErr() != nil {
					return // killed: this one's fate is unknown
				}
				if err := cl.EndTransaction(ctx, end); err != nil {
					return // killed: this one's fate is unknown
				}
				mu.Lock()
				outcome[name] = map[bool]string{true: "committed", false: "aborted"}[end == kgo.TryCommit]
				mu.Unlock()
			}
		}()
		// Let a transaction through (however loaded the machine), then
		// kill at a random moment.
		testkit.Eventually(t, 60*time.Second, "a transaction committed in this round", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return outcome[fmt.Sprintf("r%d-t0", round)] == "committed"
		})
		time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
		_ = broker.Process.Kill()
		_ = broker.Wait()
		cl.Close()
		<-done
	}
	// The last round's open transaction ends at its timeout; none may
	// stay open for good.
	restartUntilStable(ctx, t, args, addr, topic, 3)
	cons := newReader(t, []string{addr}, topic, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer cons.Close()
	seen := map[string]int{} // transaction -> records read
	// Everything is stable: read until three polls in a row bring nothing.
	for empty, deadline := 0, time.Now().Add(60*time.Second); empty < 3 && time.Now().Before(deadline); {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cons.PollFetches(pctx)
		pcancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			seen[v[:strings.LastIndex(v, "-p")]]++
			n++
		})
		if n == 0 && len(seen) > 0 {
			empty++
		} else {
			empty = 0
		}
	}
	var committed, aborted, unknown int
	for name, state := range outcome {
		n := seen[name]
		switch {
		case n != 0 && n != 3:
			t.Errorf("transaction %s (%s): %d of its 3 records visible", name, state, n)
		case state == "committed" && n == 0:
			t.Errorf("committed transaction %s is missing", name)
		case state == "aborted" && n != 0:
			t.Errorf("aborted transaction %s is visible", name)
		}
		switch state {
		case "committed":
			committed++
		case "aborted":
			aborted++
		default:
			unknown++
		}
	}
	for name := range seen {
		if _, ok := outcome[name]; !ok {
			t.Errorf("records of a transaction never produced: %s", name)
		}
	}
	t.Logf("%d rounds: %d transactions committed, %d aborted, %d cut by a kill; %d transactions visible", rounds, committed, aborted, unknown, len(seen))
	if committed < rounds {
		t.Fatalf("only %d transactions committed: the kills did not hit a running producer", committed)
	}
}
