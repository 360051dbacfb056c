package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/tributary-io/tributary/core/cluster"
)

// A single broker forms a one-node cluster (BootstrapExpect 1), registers itself and creates a
// topic; a broker reads partition state from its local copy and follows changes with Watch.
func ExampleNode() {
	dir, err := os.MkdirTemp("", "cluster-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	n, err := cluster.NewNode(cluster.Config{
		BrokerID:  1,
		DataDir:   dir,
		KafkaAddr: "127.0.0.1:9092",
		RaftAddr:  "127.0.0.1:0",
		SerfAddr:  "127.0.0.1:0",
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		panic(err)
	}
	defer n.Close()

	// Take the watch channel before reading, so no change falls in between.
	for w := n.Watch(); len(n.Metadata().LiveBrokers()) == 0; w = n.Watch() {
		select {
		case <-w:
		case <-ctx.Done():
			panic(ctx.Err())
		}
	}
	if err := n.CreateTopic(ctx, "readings", 3, 1, nil); err != nil {
		panic(err)
	}
	p, _ := n.PartitionState("readings", 2)
	fmt.Println("leader", p.Leader, "epoch", p.LeaderEpoch, "isr", p.ISR)
	// Output: leader 1 epoch 0 isr [1]
}
