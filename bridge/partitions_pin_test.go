package bridge

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCorePartitionPinnedWhenTopicGrows: the core topic gains a partition
// (an operator's CreatePartitions) while the bridge is down after a crash
// whose last cursor save trailed the acknowledgements. The re-sent records
// must go to the core partition that has this edge partition's producer
// state, and be dropped there as re-sends; they used to follow the new
// partition count elsewhere and be stored twice.
func TestCorePartitionPinnedWhenTopicGrows(t *testing.T) {
	t.Parallel()
	core, addr := startCore(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(t.Context(), 1, 1, nil, stream); err != nil {
		t.Fatal(err)
	}
	e := openEdge(t, t.TempDir(), 2)
	dev := ""
	for i := 0; dev == "" || devicePartition(dev, 2) != 1; i++ {
		dev = fmt.Sprintf("grow-%d", i)
	}
	for s := uint64(0); s < 1000; s++ {
		if err := e.appendReading(dev, s, 50); err != nil {
			t.Fatal(err)
		}
	}
	rb := startBridge(t, testBridgeConfig(addr), e)
	rb.waitCaughtUp(t, 20*time.Second)
	rb.stop()
	// What a SIGKILL 100 ms after the last save leaves: a cursor behind the acks.
	if err := e.store.PutCursor(CursorName(stream, 1), 500); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreatePartitions(t.Context(), 1, stream); err != nil {
		t.Fatal(err)
	}
	rb = startBridge(t, testBridgeConfig(addr), e)
	rb.waitCaughtUp(t, 20*time.Second)
	v := judgeCore(t, core, addr, map[string]uint64{dev: 1000}, nil)
	t.Logf("core: %+v", v)
	if v.lost != 0 || v.duplicated != 0 {
		t.Fatalf("core: lost %d duplicated %d", v.lost, v.duplicated)
	}
}
