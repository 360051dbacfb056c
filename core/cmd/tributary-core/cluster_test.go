package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
)

// startProcCluster starts three brokers, each a process re-running this
// test binary's main (TRIBUTARY_CORE_AS_MAIN). Under -short the test is
// skipped instead.
func startProcCluster(t *testing.T) ([]*testkit.CoreProc, []string) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	c := testkit.StartCoreCluster(t, 3, func(config string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "TRIBUTARY_CORE_AS_MAIN=1",
			"TRIBUTARY_CORE_ARGS=-config "+config+" -http-addr= -log-level info")
		return cmd
	})
	return c.Brokers, c.Addrs()
}

var partitionStates = testkit.PartitionStates

// await polls cond until it holds. If ctx ends first it fails the test
// with what fail says (called then, so it may report the last state cond
// saw).
func await(ctx context.Context, t *testing.T, cond func() bool, fail func() string) {
	t.Helper()
	if !testkit.PollContext(ctx, cond) {
		t.Fatal(fail())
	}
}

// waitPartitions waits until the brokers describe all parts partitions of
// topic and ok holds for each. If ctx ends first it fails the test with
// what and the last answer given before it ended (states and error).
func waitPartitions(ctx context.Context, t *testing.T, addrs []string, topic string, parts int, what string, ok func(kmsg.MetadataResponseTopicPartition) bool) {
	t.Helper()
	var st map[int32]kmsg.MetadataResponseTopicPartition
	var err error
	await(ctx, t, func() bool {
		s, e := partitionStates(ctx, addrs, topic)
		if ctx.Err() != nil {
			return false // keep the last answer for the failure
		}
		st, err = s, e
		all := err == nil && len(st) == parts
		for _, p := range st {
			all = all && ok(p)
		}
		return all
	}, func() string { return fmt.Sprintf("%s: %v %v", what, st, err) })
}

// TestClusterLeaderKills runs three broker processes and SIGKILLs the leader
// of one partition in each of 10 rounds (restarting it after) while an
// idempotent acks=all producer writes per-key sequence numbers. Every
// acknowledged record must be read back exactly once, producing must resume
// within 10 s of each kill, and after a full cluster restart the Raft
// metadata still knows the topic.
func TestClusterLeaderKills(t *testing.T) {
	bs, addrs := startProcCluster(t)
	ctx := testkit.Context(t, 150*time.Second)
	const topic, parts = "kills", 3

	createTopicWhenFormed(ctx, t, addrs, topic, parts)
	sp := startSeqProducer(ctx, t, addrs, topic, parts)
	mu, acked, lastAck := &sp.mu, sp.acked, sp.lastAck

	var failovers []time.Duration
	for round := range 10 {
		part := int32(round % parts)
		var victim *testkit.CoreProc
		var err error
		await(ctx, t, func() bool {
			var st map[int32]kmsg.MetadataResponseTopicPartition
			st, err = partitionStates(ctx, addrs, topic)
			if err == nil && st[part].Leader > 0 {
				victim = bs[st[part].Leader-1]
			}
			return victim != nil
		}, func() string { return fmt.Sprintf("round %d: no leader for partition %d: %v", round, part, err) })
		killed := time.Now()
		victim.Stop(syscall.SIGKILL)
		// Failover: the first acknowledgement of a record produced to that
		// partition after the kill.
		var took time.Duration
		resumed := testkit.Poll(time.Until(killed.Add(10*time.Second)), func() bool {
			mu.Lock()
			defer mu.Unlock()
			if sp.err != nil {
				t.Fatalf("round %d: produce failed: %v", round, sp.err)
			}
			if a := lastAck[part]; a.produced.After(killed) {
				took = a.at.Sub(killed)
			}
			return took != 0
		})
		if !resumed {
			t.Fatalf("round %d: partition %d took over 10s to accept writes after broker %d was killed", round, part, victim.ID)
		}
		failovers = append(failovers, took)
		t.Logf("round %d: killed broker %d (leader of %s/%d); writes resumed after %v", round, victim.ID, topic, part, took.Round(time.Millisecond))
		victim.Start(t)
		// Before the next kill, the restarted broker must be back in every ISR.
		waitPartitions(ctx, t, addrs, topic, parts, fmt.Sprintf("round %d: broker %d did not rejoin the ISRs", round, victim.ID),
			func(p kmsg.MetadataResponseTopicPartition) bool {
				return len(p.ISR) == 3 && slices.Contains(p.ISR, victim.ID) && p.Leader > 0
			})
	}
	nAcked := sp.stop(ctx, t)
	slices.Sort(failovers)
	t.Logf("%d records acknowledged; failover (kill → first ack) min %v median %v max %v", nAcked,
		failovers[0].Round(time.Millisecond), failovers[len(failovers)/2].Round(time.Millisecond),
		failovers[len(failovers)-1].Round(time.Millisecond))

	verifyLog(ctx, t, addrs, topic, acked, "after 10 leader kills")

	// Full cluster restart: the Raft metadata (topic, assignment) survives
	// and the data is still served.
	for _, b := range bs {
		b.Stop(syscall.SIGTERM)
	}
	for _, b := range bs {
		b.Start(t)
	}
	waitPartitions(ctx, t, addrs, topic, parts, "after a full restart the topic's metadata is not back",
		func(p kmsg.MetadataResponseTopicPartition) bool { return p.Leader > 0 && len(p.Replicas) == 3 })
	verifyLog(ctx, t, addrs, topic, acked, "after a full cluster restart")
}

// TestClusterRollingRestart restarts the brokers one after another
// (SIGTERM) while the sequence producer writes and a consumer group reads
// and commits: nothing acknowledged is lost or duplicated in the log, the
// group reads everything, and its committed offsets (replicated through
// __consumer_offsets) survive the restarts of every coordinator.
func TestClusterRollingRestart(t *testing.T) {
	bs, addrs := startProcCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const topic, parts, group = "rolling", 3, "rollers"
	createTopicWhenFormed(ctx, t, addrs, topic, parts)
	sp := startSeqProducer(ctx, t, addrs, topic, parts)

	gr := startGroupReader(ctx, t, addrs, topic, group)

	for _, b := range bs {
		time.Sleep(time.Second) // let traffic flow between restarts
		b.Stop(syscall.SIGTERM)
		b.Start(t)
		waitPartitions(ctx, t, addrs, topic, parts, fmt.Sprintf("broker %d did not rejoin the ISRs", b.ID),
			func(p kmsg.MetadataResponseTopicPartition) bool { return len(p.ISR) == 3 && p.Leader > 0 })
		t.Logf("restarted broker %d", b.ID)
	}
	nAcked := sp.stop(ctx, t)
	gr.waitRead(t, sp.acked, 60*time.Second)
	gr.stopPolling()
	if err := gr.cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("final commit: %v", err)
	}
	gr.cl.Close()
	verifyLog(ctx, t, addrs, topic, sp.acked, "after a rolling restart")

	// The group's committed offsets are the partitions' ends: a new member
	// of the group starts there and reads nothing old.
	adm, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Group = group
	ft := kmsg.NewOffsetFetchRequestTopic()
	ft.Topic, ft.Partitions = topic, []int32{0, 1, 2}
	fetch.Topics = append(fetch.Topics, ft)
	// committedSum retries while the coordinator moves (dial errors,
	// NOT_COORDINATOR, loading) for up to 20 s.
	committedSum := func() int64 {
		t.Helper()
		var last string
		var sum int64
		fetched := testkit.Poll(20*time.Second, func() bool {
			rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			resp, err := fetch.RequestWith(rctx, adm)
			cancel()
			if err != nil || resp.ErrorCode != 0 {
				last = fmt.Sprintf("%v %+v", err, resp)
				return false
			}
			sum = 0
			ok := true
			for _, p := range resp.Topics[0].Partitions {
				if p.ErrorCode != 0 || p.Offset < 0 {
					last = fmt.Sprintf("partition %d: committed offset %d, error %v", p.Partition, p.Offset, kerr.ErrorForCode(p.ErrorCode))
					ok = false
				}
				sum += p.Offset
			}
			return ok
		})
		if !fetched {
			t.Fatalf("offset fetch: %s", last)
		}
		return sum
	}
	committed := committedSum()
	if committed < int64(nAcked) {
		t.Fatalf("group committed %d offsets in all, fewer than the %d acknowledged records it read", committed, nAcked)
	}
	t.Logf("%d records acknowledged, all read by the group; %d offsets committed", nAcked, committed)

	// Restart the group's coordinator: the new one answers the same.
	coord := bs[findCoordinator(ctx, t, adm, groupCoordinator, group)-1]
	coord.Stop(syscall.SIGKILL)
	if after := committedSum(); after != committed {
		t.Fatalf("with coordinator %d killed the group's offsets sum to %d, want %d", coord.ID, after, committed)
	}
	coord.Start(t)
}

// TestClusterConfig checks the cluster flags and that the example's
// commented cluster section parses once uncommented.
func TestClusterConfig(t *testing.T) {
	cfg, _, err := loadConfig([]string{"-node-id", "2", "-serf-addr", "127.0.0.1:7946", "-raft-addr", "127.0.0.1:7947",
		"-join", "127.0.0.1:7946, 127.0.0.2:7946", "-bootstrap-expect", "3", "-min-insync-replicas", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster == nil || cfg.Cluster.SerfAddr != "127.0.0.1:7946" || cfg.Cluster.RaftAddr != "127.0.0.1:7947" ||
		len(cfg.Cluster.Join) != 2 || cfg.Cluster.BootstrapExpect != 3 || cfg.Replication.MinInsyncReplicas != 2 {
		t.Fatalf("cluster flags not applied: %+v %+v", cfg.Cluster, cfg.Replication)
	}
	if cfg, _, err := loadConfig(nil, io.Discard); err != nil || cfg.Cluster != nil {
		t.Fatalf("no cluster flags must mean single node: %v %+v", err, cfg.Cluster)
	}

	b, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "core.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	in := false
	for i, l := range lines {
		if strings.HasPrefix(l, "# cluster:") {
			in = true
		}
		if in && strings.HasPrefix(l, "# ") {
			lines[i] = strings.TrimPrefix(l, "# ")
		}
	}
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err = loadConfig([]string{"-config", path}, io.Discard)
	if err != nil {
		t.Fatalf("uncommented cluster example: %v", err)
	}
	if cfg.Cluster == nil || cfg.Cluster.BootstrapExpect != 3 || len(cfg.Cluster.Join) != 3 ||
		cfg.Cluster.Raft.ElectionTimeout != time.Second || cfg.Replication.AckTimeout != 30*time.Second {
		t.Fatalf("cluster example not parsed: %+v", cfg.Cluster)
	}
}

// groupReader is a consumer group member that records every record it
// reads ("key/value").
type groupReader struct {
	cl       *kgo.Client
	mu       sync.Mutex
	consumed map[string]bool
	stop     context.CancelFunc
	done     chan struct{}
}

func startGroupReader(ctx context.Context, t *testing.T, addrs []string, topic, group string) *groupReader {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.AutoCommitInterval(300*time.Millisecond), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	gr := &groupReader{cl: cl, consumed: map[string]bool{}, done: make(chan struct{})}
	cctx, stop := context.WithCancel(ctx)
	gr.stop = stop
	go func() {
		defer close(gr.done)
		for cctx.Err() == nil {
			cl.PollFetches(cctx).EachRecord(func(r *kgo.Record) {
				gr.mu.Lock()
				gr.consumed[string(r.Key)+"/"+string(r.Value)] = true
				gr.mu.Unlock()
			})
		}
	}()
	return gr
}

// waitRead waits until the group has read every acknowledged record.
func (gr *groupReader) waitRead(t *testing.T, acked map[string]bool, limit time.Duration) {
	t.Helper()
	missing := map[string]int{} // by key
	read := testkit.Poll(limit, func() bool {
		gr.mu.Lock()
		defer gr.mu.Unlock()
		clear(missing)
		for id := range acked {
			if !gr.consumed[id] {
				missing[strings.SplitN(id, "/", 2)[0]]++
			}
		}
		return len(missing) == 0
	})
	if !read {
		t.Fatalf("after %v the group has not read these acknowledged records (count by key): %v", limit, missing)
	}
}

// stopPolling ends the reader's poll loop and waits for it.
func (gr *groupReader) stopPolling() {
	gr.stop()
	<-gr.done
}

// verifyLog reads topic from the start without a group and checks that every
// acknowledged record is there exactly once and in per-key order.
func verifyLog(ctx context.Context, t *testing.T, addrs []string, topic string, acked map[string]bool, when string) {
	t.Helper()
	nAcked := len(acked)
	cons := newReader(t, addrs, topic)
	defer cons.Close()
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	seen := map[string]int{}
	last := map[string]int{}
	covered, disorder := 0, 0
	for covered < nAcked && vctx.Err() == nil {
		cons.PollFetches(vctx).EachRecord(func(r *kgo.Record) {
			id := string(r.Key) + "/" + string(r.Value)
			seen[id]++
			if seen[id] == 1 && acked[id] {
				covered++
			}
			// Per key, sequence numbers come back in the order sent.
			seq, _ := strconv.Atoi(string(r.Value))
			if prev, ok := last[string(r.Key)]; ok && seq <= prev {
				disorder++
			}
			last[string(r.Key)] = seq
		})
	}
	if disorder > 0 {
		t.Errorf("%s: %d records out of per-key order", when, disorder)
	}
	lost, dups := 0, 0
	lostByKey := map[string]int{}
	for id := range acked {
		if seen[id] == 0 {
			lost++
			lostByKey[strings.SplitN(id, "/", 2)[0]]++
		}
	}
	if lost > 0 {
		// Tell a record missing from the log from one not read in time.
		ends, err := kadm.NewClient(cons).ListEndOffsets(ctx, topic)
		t.Logf("%s: not read, by key: %v; reading stopped: %v; end offsets now: %v %v", when, lostByKey, vctx.Err(), ends, err)
	}
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	t.Logf("%s: read %d distinct records, %d lost acknowledged, %d duplicated", when, len(seen), lost, dups)
	if lost != 0 || dups != 0 {
		t.Fatalf("%s: %d acknowledged records lost, %d duplicated", when, lost, dups)
	}
}

// createTopicWhenFormed creates an RF=3, min.insync.replicas=2 topic,
// retrying while the cluster is still forming, and waits until every
// broker describes it with leaders (testkit.CreateClusterTopic).
func createTopicWhenFormed(ctx context.Context, t *testing.T, addrs []string, topic string, parts int32) {
	t.Helper()
	if err := testkit.CreateClusterTopic(ctx, addrs, topic, parts, 3); err != nil {
		t.Fatal(err)
	}
}

// newReader is a client that reads topic from its start, with opts added
// (read_committed, say); the caller closes it.
func newReader(t *testing.T, addrs []string, topic string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// seqProducer is an idempotent acks=all producer writing, for six keys
// (two per partition), the sequence numbers 0, 1, 2, ... as values.
type seqProducer struct {
	cl      *kgo.Client
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	acked   map[string]bool   // "key/seq" acknowledged
	lastAck map[int32]ackTime // per partition: the newest record acknowledged
	err     error             // first failed record
}

func startSeqProducer(ctx context.Context, t *testing.T, addrs []string, topic string, parts int32) *seqProducer {
	t.Helper()
	// AlwaysRetryEOF: franz-go takes a connection closed before its first
	// answer for a TLS or SASL mistake and gives up, but a broker killed
	// with SIGKILL right after a dial closes it just so.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordRetries(1<<30), kgo.RecordDeliveryTimeout(60*time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.ProduceRequestTimeout(10*time.Second), kgo.AlwaysRetryEOF())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	sp := &seqProducer{cl: cl, acked: map[string]bool{}, lastAck: map[int32]ackTime{}}
	pctx, cancel := context.WithCancel(ctx)
	sp.cancel = cancel
	const keys = 6
	for k := range keys {
		sp.wg.Go(func() {
			inflight := make(chan struct{}, 20)
			for seq := 0; pctx.Err() == nil; seq++ {
				select {
				case inflight <- struct{}{}:
				case <-pctx.Done():
					return
				}
				r := &kgo.Record{Key: []byte(fmt.Sprintf("k%d", k)), Value: []byte(strconv.Itoa(seq)), Partition: int32(k) % parts}
				cl.Produce(ctx, r, func(r *kgo.Record, err error) {
					defer func() { <-inflight }()
					sp.mu.Lock()
					defer sp.mu.Unlock()
					if err != nil {
						if sp.err == nil {
							sp.err = err
						}
						return
					}
					sp.acked[string(r.Key)+"/"+string(r.Value)] = true
					if r.Timestamp.After(sp.lastAck[r.Partition].produced) {
						sp.lastAck[r.Partition] = ackTime{produced: r.Timestamp, at: time.Now()}
					}
				})
			}
		})
	}
	return sp
}

// ackTime is when a record was produced and when it was acknowledged.
type ackTime struct{ produced, at time.Time }

// stop ends producing, waits for every outstanding record and returns how
// many were acknowledged; any failed record fails the test.
func (sp *seqProducer) stop(ctx context.Context, t *testing.T) int {
	t.Helper()
	sp.cancel()
	sp.wg.Wait()
	if err := sp.cl.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.err != nil {
		t.Fatalf("produce failed: %v", sp.err)
	}
	return len(sp.acked)
}

// A broker told to stop is gone within its shutdown bound whatever its
// peers do: here they are frozen (SIGSTOP: sockets open, nothing answers),
// then gone. Before, Leave's leadership transfer and leave broadcast ran on
// their own timeouts (14-15 s here with frozen peers) and Node.Close waited
// on raft's shutdown for as long as a peer held a replication write (19
// minutes in one CI run).
func TestStopIsBoundedWhatever(t *testing.T) {
	for _, peers := range []string{"frozen", "gone"} {
		t.Run(peers, func(t *testing.T) {
			bs, _ := startProcCluster(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			createTopicWhenFormed(ctx, t, []string{bs[0].Addr, bs[1].Addr, bs[2].Addr}, "stop", 3)
			for _, b := range bs[1:] {
				if peers == "frozen" {
					b.Freeze()
				} else {
					b.Stop(syscall.SIGKILL)
				}
			}
			// The bound: the controlled-shutdown handover (5 s by default)
			// plus raft's bounded shutdown (5 s), and a little to flush.
			const bound = 13 * time.Second
			took, exited := bs[0].StopWithin(syscall.SIGTERM, 45*time.Second)
			if !exited || took > bound {
				t.Fatalf("broker 1 stopped after %v (exited by itself: %v) with its peers %s; want within %v",
					took.Round(time.Millisecond), exited, peers, bound)
			}
			t.Logf("broker 1 stopped %v after SIGTERM with its peers %s", took.Round(time.Millisecond), peers)
		})
	}
}
