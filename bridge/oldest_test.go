package bridge

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/tributary-io/tributary/internal/testkit"
)

// TestOldestUnforwardedAge: while the core is unreachable the age of the
// oldest waiting record grows from that record's timestamp, in Status and
// as tributary_bridge_oldest_unforwarded_age_seconds; once forwarded it is 0.
func TestOldestUnforwardedAge(t *testing.T) {
	t.Parallel()
	addr := testkit.FreeAddr(t)
	e := openEdge(t, t.TempDir(), 1)
	first := time.Now()
	for i := range 5 {
		if err := e.appendReading("dev-old", uint64(i), 0); err != nil {
			t.Fatal(err)
		}
	}
	rb := startBridge(t, testBridgeConfig(addr), e) // nothing listens there yet
	testkit.Eventually(t, 10*time.Second, "a partition with backlog and an oldest age", func() bool {
		ps := rb.Status().Partitions
		return len(ps) == 1 && ps[0].BacklogRecords == 5 && ps[0].OldestUnforwardedAge >= 50*time.Millisecond
	})
	p := rb.Status().Partitions[0]
	if d := p.OldestUnforwarded.Sub(first); d < -time.Second || d > time.Second {
		t.Errorf("oldest unforwarded %v, first append at %v", p.OldestUnforwarded, first)
	}
	if got := gaugeValue(t, rb, "tributary_bridge_oldest_unforwarded_age_seconds"); got < 0.05 {
		t.Errorf("tributary_bridge_oldest_unforwarded_age_seconds = %v", got)
	}

	core := newCore(t, addr, "")
	core.start()
	rb.waitCaughtUp(t, 30*time.Second)
	if p := rb.Status().Partitions[0]; p.OldestUnforwardedAge != 0 || !p.OldestUnforwarded.IsZero() {
		t.Errorf("caught up but oldest unforwarded %v (%v)", p.OldestUnforwarded, p.OldestUnforwardedAge)
	}
	if got := gaugeValue(t, rb, "tributary_bridge_oldest_unforwarded_age_seconds"); got != 0 {
		t.Errorf("caught up but tributary_bridge_oldest_unforwarded_age_seconds = %v", got)
	}
}

func gaugeValue(t *testing.T, rb *runningBridge, name string) float64 {
	t.Helper()
	mfs, err := rb.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	var found bool
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			found = true
			v += gauge(m)
		}
	}
	if !found {
		t.Fatalf("no %s in the registry", name)
	}
	return v
}

func gauge(m *dto.Metric) float64 { return m.GetGauge().GetValue() }
