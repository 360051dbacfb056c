package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/tributary-io/tributary/edge/ingest"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// budgetConfig: one partition, tiny segments, a budget of a few segments.
func budgetConfig(t *testing.T, policy ingest.BudgetPolicy, budget int64) Config {
	cfg := testConfig(t)
	cfg.Log.SegmentBytes = 1024
	cfg.Ingest.Streams = map[string]ingest.StreamConfig{"sensors": {Partitions: 1}}
	cfg.Ingest.BudgetBytes = budget
	cfg.Ingest.BudgetPolicy = policy
	return cfg
}

// fixedReading has the same length for every seq below 10^6, so every batch
// has the same size and the expected counts are exact.
func fixedReading(seq int) []byte {
	return []byte(fmt.Sprintf(`{"device":"d1","seq":%d,"ts":1700000000000,"temp":21.5}`, 100000+seq))
}

func batchSize(t *testing.T, g *Gateway) int64 {
	t.Helper()
	l, err := g.Topics().Partition("sensors", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Read(l.StartOffset(), 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := recordbatch.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return int64(h.Size())
}

// TestBudgetBlock: once the logs hold the budget, MQTT 5 QoS 1 publishes get
// 0x97, MQTT 3.1.1 QoS 1 publishes get no acknowledgement, QoS 0 publishes
// are not stored — and the counts are exact.
func TestBudgetBlock(t *testing.T) {
	t.Parallel()
	const budget = 2000
	g, _ := startGateway(t, budgetConfig(t, ingest.PolicyBlock, budget))
	c5 := connectRaw(t, g.MQTTAddr(), 5, "b5")
	const n = 40
	accepted, refused := 0, 0
	for i := 0; i < n; i++ {
		code, err := c5.publish("sensors/d1/r", fixedReading(i), 1, "", 5*time.Second)
		switch {
		case err != nil:
			t.Fatalf("publish %d: %v", i, err)
		case code == 0:
			if refused > 0 {
				t.Fatalf("publish %d accepted after a refusal", i)
			}
			accepted++
		case code == 0x97:
			refused++
		default:
			t.Fatalf("publish %d: code %#x", i, code)
		}
	}
	size := batchSize(t, g)
	want := int((budget + size - 1) / size) // appends go on while size < budget
	if accepted != want || refused != n-want {
		t.Fatalf("accepted %d refused %d with %d-byte batches; want %d and %d", accepted, refused, size, want, n-want)
	}
	// QoS 0 and MQTT 3.1.1 QoS 1 are refused too.
	c3 := connectRaw(t, g.MQTTAddr(), 4, "b3")
	if _, err := c3.publish("sensors/d1/r", fixedReading(n), 0, "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c3.publish("sensors/d1/r", fixedReading(n+1), 1, "", 300*time.Millisecond); err != errNoAck {
		t.Fatalf("v3 QoS 1 over budget: %v, want no acknowledgement", err)
	}
	if recs := readStream(t, g.Topics(), "sensors"); len(recs) != accepted {
		t.Fatalf("stored %d records, want %d", len(recs), accepted)
	}
	c := g.Ingest().Counts()
	if c.Refused[ingest.ReasonBudget] != float64(refused+2) || c.Appended != float64(accepted) || c.Dropped != 0 {
		t.Fatalf("counts %+v: want %d budget refusals, %d appended, 0 dropped", c, refused+2, accepted)
	}
}

// TestBudgetDropOldest: every publish is accepted; whole oldest segments go,
// and the dropped counter equals exactly the records no longer in the log.
func TestBudgetDropOldest(t *testing.T) {
	t.Parallel()
	const budget = 3000
	g, _ := startGateway(t, budgetConfig(t, ingest.PolicyDropOldest, budget))
	c5 := connectRaw(t, g.MQTTAddr(), 5, "d5")
	const n = 100
	for i := 0; i < n; i++ {
		if code, err := c5.publish("sensors/d1/r", fixedReading(i), 1, "", 5*time.Second); err != nil || code != 0 {
			t.Fatalf("publish %d: code %#x err %v", i, code, err)
		}
	}
	recs := readStream(t, g.Topics(), "sensors")
	l, err := g.Topics().Partition("sensors", 0)
	if err != nil {
		t.Fatal(err)
	}
	c := g.Ingest().Counts()
	if c.Dropped == 0 || c.Dropped != float64(n-len(recs)) || l.StartOffset() != int64(c.Dropped) {
		t.Fatalf("dropped counter %v, %d records left of %d, log start %d", c.Dropped, len(recs), n, l.StartOffset())
	}
	// What is left is the newest readings, in order, none missing.
	for i, r := range recs {
		if want := string(fixedReading(n - len(recs) + i)); string(r.Value) != want {
			t.Fatalf("record %d is %s, want %s", i, r.Value, want)
		}
	}
	if size, max := g.Topics().TotalSize(), int64(budget)+batchSize(t, g); size > max {
		t.Fatalf("logs hold %d bytes, over budget+one batch %d", size, max)
	}
	if c.Refused[ingest.ReasonBudget] != 0 || c.Appended != n {
		t.Fatalf("counts %+v: want no refusals and %d appended", c, n)
	}
}

// TestRetentionRuns: the gateway applies the logs' retention in the background.
func TestRetentionRuns(t *testing.T) {
	t.Parallel()
	cfg := budgetConfig(t, ingest.PolicyBlock, 0)
	cfg.Log.RetentionBytes = 2048
	cfg.MaintainInterval = 20 * time.Millisecond
	g, _ := startGateway(t, cfg)
	c := connectRaw(t, g.MQTTAddr(), 4, "ret")
	for i := 0; i < 60; i++ {
		if code, err := c.publish("sensors/d1/r", fixedReading(i), 1, "", 5*time.Second); err != nil || code != 0 {
			t.Fatalf("publish %d: %#x %v", i, code, err)
		}
	}
	l, err := g.Topics().Partition("sensors", 0)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "retention to remove a segment", func() bool {
		return l.StartOffset() > 0
	})
}
