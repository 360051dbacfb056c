package server

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/internal/testkit"
)

// TestHealthAndReadiness: a fresh broker with a topic is ok and ready, and
// says so as JSON with a status and an (empty) list of reasons.
func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	srv, _ := startWithTopics(t, 2, "hz")
	var h Health
	if code := testkit.GetJSON(t, "http://"+srv.HTTPAddr()+"/healthz", &h); code != http.StatusOK || h.Status != StatusOK || h.Reasons == nil || len(h.Reasons) != 0 {
		t.Fatalf("/healthz %d: %+v", code, h)
	}
	var r Readiness
	if code := testkit.GetJSON(t, "http://"+srv.HTTPAddr()+"/readyz", &r); code != http.StatusOK || !r.Ready {
		t.Fatalf("/readyz %d: %+v", code, r)
	}
	parts := srv.Partitions()
	if len(parts) != 2 || parts[0].Topic != "hz" || !parts[0].Leading || parts[1].Partition != 1 {
		t.Fatalf("partitions: %+v", parts)
	}
}

// TestPartitionMetricsAndGroupLag: the per-partition gauges follow the log
// and a group's lag is the high watermark minus its committed offset.
func TestPartitionMetricsAndGroupLag(t *testing.T) {
	t.Parallel()
	srv, _ := startWithTopics(t, 1, "lagged")
	produceValues(t, srv.Addr(), "lagged", 10, 100)
	adm := kadm.NewClient(newClient(t, srv.Addr()))
	ctx := testkit.Context(t, 10*time.Second)
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "lagged", Partition: 0, At: 4, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, "readers", offs); err != nil {
		t.Fatal(err)
	}
	lags := srv.GroupLags()
	if len(lags) != 1 || lags[0] != (GroupLag{Group: "readers", Topic: "lagged", Partition: 0, Committed: 4, HighWatermark: 10, Lag: 6}) {
		t.Fatalf("group lags: %+v", lags)
	}
	for name, want := range map[string]float64{
		"tributary_core_group_lag":                  6,
		"tributary_core_group_committed_offset":     4,
		"tributary_core_partition_log_end_offset":   10,
		"tributary_core_partition_high_watermark":   10,
		"tributary_core_partition_log_start_offset": 0,
		"tributary_core_partition_leader":           1,
	} {
		if got := metricValue(t, srv, name, "topic", "lagged"); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := metricValue(t, srv, "tributary_core_partition_size_bytes"); got < 1000 {
		t.Errorf("tributary_core_partition_size_bytes = %v, want at least the 1000 value bytes", got)
	}
}

// TestHealthOfflinePartitionIsFailing: when the only replica of a
// partition stops, the partition has no leader; every other broker's
// /healthz says failing (503) and names it, while staying ready.
func TestHealthOfflinePartitionIsFailing(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	tb.createTopic("lonely", 1, 1, 1)
	st, _ := tb.srvs[0].Cluster().PartitionState("lonely", 0)
	leader, other := tb.byID(st.Leader), tb.other(st.Leader)
	if h := other.Health(); h.Status != StatusOK {
		t.Fatalf("health before the stop: %+v", h)
	}
	if err := leader.Close(); err != nil {
		t.Fatal(err)
	}
	tb.waitFor("lonely/0 offline", 30*time.Second, func() bool {
		ps, _ := other.Cluster().PartitionState("lonely", 0)
		return ps.Leader == cluster.NoLeader
	})
	h := other.Health()
	if h.Status != StatusFailing || !slices.ContainsFunc(h.Reasons, func(r string) bool { return strings.HasPrefix(r, "lonely/0 offline") }) {
		t.Fatalf("health with lonely/0 offline: %+v", h)
	}
	rec, mux := httptest.NewRecorder(), http.NewServeMux()
	other.serveHealth(mux)
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/healthz answered %d with a partition offline, want 503", rec.Code)
	}
	if r := other.Readiness(); !r.Ready {
		t.Errorf("not ready with a partition offline elsewhere: %+v", r)
	}
}
