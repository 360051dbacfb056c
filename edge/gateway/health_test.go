package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/internal/testkit"
)

func getHealth(t *testing.T, addr string) (int, Health) {
	t.Helper()
	var h Health
	code := testkit.GetJSON(t, "http://"+addr+"/healthz", &h)
	return code, h
}

// TestHealthDegradedBridgeAndBudget: an edge whose bridge has had records
// waiting without an acknowledgement for longer than the configured time,
// or whose logs fill the disk budget past the threshold, is degraded (200,
// with the reason), not failing; with neither it is ok.
func TestHealthDegradedBridgeAndBudget(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.HTTP.Health = HealthConfig{BridgeAckTimeout: 30 * time.Second, BudgetPercent: 50}
	cfg.Ingest.BudgetBytes = 16 << 10
	g, _ := startGateway(t, cfg)

	part := bridge.PartitionStatus{Stream: "sensors", Partition: 0, BacklogRecords: 0}
	g.SetStatusSource("bridge", func() any { return bridge.Status{Partitions: []bridge.PartitionStatus{part}} })
	if code, h := getHealth(t, g.HTTPAddr()); code != http.StatusOK || h.Status != StatusOK || h.Bridge == nil {
		t.Fatalf("caught-up bridge: %d %+v", code, h)
	}

	part = bridge.PartitionStatus{Stream: "sensors", Partition: 0, BacklogRecords: 12, LastAckAge: 45 * time.Second,
		LastError: "dial tcp 127.0.0.1:1: connect: connection refused"}
	code, h := getHealth(t, g.HTTPAddr())
	if code != http.StatusOK || h.Status != StatusDegraded || len(h.Reasons) != 1 ||
		!strings.Contains(h.Reasons[0], "sensors-0 has 12 records waiting") || !strings.Contains(h.Reasons[0], "connection refused") {
		t.Fatalf("bridge without acks for 45s: %d %+v", code, h)
	}
	if h.Bridge.BacklogRecords != 12 || h.Bridge.MaxLastAckAgeSeconds != 45 {
		t.Errorf("bridge summary: %+v", h.Bridge)
	}
	g.SetStatusSource("bridge", nil)

	// Fill the logs past half of the 16 KiB budget.
	c := connectRaw(t, g.MQTTAddr(), 4, "hb")
	for i := 0; g.Topics().TotalSize() < 9<<10; i++ {
		if code, err := c.publish("sensors/d1/r", jsonReading("d1", uint64(i), 1), 1, "", 5*time.Second); err != nil || code != 0 {
			t.Fatalf("publish %d: %#x %v", i, code, err)
		}
	}
	code, h = getHealth(t, g.HTTPAddr())
	if code != http.StatusOK || h.Status != StatusDegraded || len(h.Reasons) != 1 || !strings.Contains(h.Reasons[0], "disk budget") {
		t.Fatalf("over the budget threshold: %d %+v", code, h)
	}
}

// TestReadyz: ready while serving, with a JSON body.
func TestReadyz(t *testing.T) {
	t.Parallel()
	g, stop := startGateway(t, testConfig(t))
	var r Readiness
	if code := testkit.GetJSON(t, "http://"+g.HTTPAddr()+"/readyz", &r); code != http.StatusOK || !r.Ready {
		t.Fatalf("/readyz: %d %+v", code, r)
	}
	stop()
	if r := g.Readiness(); r.Ready {
		t.Fatalf("ready after shutdown: %+v", r)
	}
}
