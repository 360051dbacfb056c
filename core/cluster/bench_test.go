package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tributary-io/tributary/internal/testkit"
)

// BenchmarkRaftStoreStoreLogs measures one fsynced bbolt transaction per batch of 64 entries of
// 256 bytes (raft's MaxAppendEntries is 64).
func BenchmarkRaftStoreStoreLogs(b *testing.B) {
	s, err := OpenRaftStore(b.TempDir() + "/raft.db")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 256)
	var idx uint64
	b.SetBytes(64 * 256)
	for b.Loop() {
		batch := make([]*raft.Log, 64)
		for i := range batch {
			idx++
			batch[i] = &raft.Log{Index: idx, Term: 1, Data: data}
		}
		if err := s.StoreLogs(batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFSMBrokerFailover measures applying a broker failure to metadata with 1,000
// partitions over 5 brokers (the whole metadata is walked once).
func BenchmarkFSMBrokerFailover(b *testing.B) {
	f := NewFSM(slog.New(slog.DiscardHandler))
	var idx uint64
	apply := func(c command) {
		data, err := encodeCommand(c)
		if err != nil {
			b.Fatal(err)
		}
		idx++
		if res := f.Apply(&raft.Log{Index: idx, Data: data}).(applyResult); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
	for id := int32(1); id <= 5; id++ {
		apply(command{Op: opRegisterBroker, Broker: &Broker{ID: id}})
	}
	for i := range 10 {
		apply(command{Op: opCreateTopic, Topic: fmt.Sprintf("t%d", i), Partitions: 100, RF: 3})
	}
	id := int32(1)
	for b.Loop() {
		apply(command{Op: opBrokerDown, BrokerID: id})
		apply(command{Op: opRegisterBroker, Broker: &Broker{ID: id}})
		id = id%5 + 1
	}
}

// BenchmarkProposeISR measures a metadata proposal (an ISR change, shrinking and expanding in
// turn) made on a follower of a 3-broker loopback cluster: forward to the controller, Raft commit
// on a quorum (bbolt fsync), local apply.
func BenchmarkProposeISR(b *testing.B) {
	nodes := startBenchCluster(b)
	var follower, controller *Node
	for _, n := range nodes {
		if n.IsController() {
			controller = n
		} else {
			follower = n
		}
	}
	ctx := context.Background()
	if err := follower.CreateTopic(ctx, "bench", 1, 3, nil); err != nil {
		b.Fatal(err)
	}
	for _, on := range []struct {
		name string
		n    *Node
	}{{"on=controller", controller}, {"on=follower", follower}} {
		// Start from a current view: the previous run's last change may still be in flight.
		if err := on.n.waitApplied(ctx, controller.fsm.AppliedIndex()); err != nil {
			b.Fatal(err)
		}
		b.Run(on.name, func(b *testing.B) {
			for b.Loop() {
				p, _ := on.n.PartitionState("bench", 0)
				isr := p.Replicas
				if len(p.ISR) == 3 {
					isr = []int32{p.Leader}
				}
				if _, err := on.n.ProposeISR(ctx, p, isr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func startBenchCluster(b *testing.B) []*Node {
	b.Helper()
	var nodes []*Node
	var join []string
	var cfgs []Config
	for i := range 3 {
		serfAddr := fmt.Sprintf("127.0.0.1:%d", freePort(b))
		join = append(join, serfAddr)
		cfgs = append(cfgs, Config{
			BrokerID: int32(i + 1), DataDir: b.TempDir(), KafkaAddr: "127.0.0.1:9092",
			RaftAddr: "127.0.0.1:0", RPCAddr: "127.0.0.1:0", SerfAddr: serfAddr, BootstrapExpect: 3,
			ReconcileInterval: 100 * time.Millisecond,
		})
	}
	logger := slog.New(slog.DiscardHandler)
	for i := range cfgs {
		cfgs[i].Join = join
		n, err := NewNode(cfgs[i], logger)
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	if !testkit.Poll(30*time.Second, func() bool {
		for _, n := range nodes {
			if len(n.Metadata().LiveBrokers()) != 3 {
				return false
			}
		}
		return true
	}) {
		b.Fatal("bench cluster did not form")
	}
	return nodes
}
