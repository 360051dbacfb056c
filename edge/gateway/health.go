package gateway

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/internal/health"
)

// Health and readiness on the HTTP listener:
//
//	GET /healthz  {"status": "ok"|"degraded"|"failing", "reasons": [...], ...}: 200 for
//	              ok and degraded, 503 for failing
//	GET /readyz   {"ready": bool, "reasons": [...]}: 200 while the MQTT listeners
//	              serve, 503 before and once shutdown has begun
//
// Failing: a partition is read-only, or a damaged range has not yet been
// declared lost by the bridge (with no bridge, never). Degraded: the bridge
// has had records waiting without an acknowledgement from the core for
// longer than http.health.bridge_ack_timeout, or the logs use more than
// http.health.budget_percent of the disk budget.

// Health statuses, worst last.
const (
	StatusOK       = health.StatusOK
	StatusDegraded = health.StatusDegraded
	StatusFailing  = health.StatusFailing
)

// Health defaults.
const (
	DefaultBridgeAckTimeout = time.Minute
	DefaultBudgetPercent    = 90
)

// HealthConfig sets when /healthz calls the edge degraded; zero fields take
// the defaults.
type HealthConfig struct {
	// BridgeAckTimeout is how long the bridge may have records waiting
	// with no acknowledgement from the core (default 1m).
	BridgeAckTimeout time.Duration `yaml:"bridge_ack_timeout"`
	// BudgetPercent is the share of ingest.budget_bytes above which the
	// edge is degraded (default 90; no budget, no check).
	BudgetPercent float64 `yaml:"budget_percent"`
}

func (h HealthConfig) withDefaults() HealthConfig {
	if h.BridgeAckTimeout <= 0 {
		h.BridgeAckTimeout = DefaultBridgeAckTimeout
	}
	if h.BudgetPercent <= 0 {
		h.BudgetPercent = DefaultBudgetPercent
	}
	return h
}

// Health is the body of /healthz. Besides the verdict it keeps the
// details the endpoint always had: disk use and every read-only partition
// and damaged range.
type Health struct {
	Status      string         `json:"status"`
	Reasons     []string       `json:"reasons"`
	EdgeID      string         `json:"edge_id"`
	LogBytes    int64          `json:"log_bytes"`
	BudgetBytes int64          `json:"budget_bytes"`
	ReadOnly    []string       `json:"read_only,omitempty"`
	Damaged     []damageReport `json:"damaged,omitempty"`
	// Bridge summarises forwarding: absent when the bridge is off.
	Bridge *bridgeHealth `json:"bridge,omitempty"`
	// Aggregations is each aggregation's status (lag, windows open,
	// checkpoint age): detail only, a stalled aggregation does not fail
	// ingest.
	Aggregations any `json:"aggregations,omitempty"`
}

type bridgeHealth struct {
	BacklogRecords int64 `json:"backlog_records"`
	// MaxLastAckAgeSeconds is the longest any partition's records have
	// waited without an acknowledgement (0 when caught up).
	MaxLastAckAgeSeconds float64 `json:"max_last_ack_age_seconds"`
}

// Health judges the gateway: see the comment at the top of this file.
func (g *Gateway) Health() Health {
	hc := g.cfg.HTTP.Health.withDefaults()
	h := Health{Status: StatusOK, Reasons: []string{}, EdgeID: g.edgeID, LogBytes: g.topics.TotalSize(),
		BudgetBytes: g.cfg.Ingest.BudgetBytes}
	worse := func(status, reason string) { health.Worse(&h.Status, &h.Reasons, status, reason) }
	if !g.serving.Load() {
		worse(StatusFailing, "not serving: starting or shutting down")
	}
	for _, t := range g.topics.List() {
		for p := int32(0); p < t.Partitions; p++ {
			l, err := g.topics.Partition(t.Name, p)
			if err != nil {
				continue
			}
			if err := l.ReadOnlyReason(); err != nil {
				h.ReadOnly = append(h.ReadOnly, fmt.Sprintf("%s-%d: %v", t.Name, p, err))
				worse(StatusFailing, fmt.Sprintf("%s-%d read-only: %v", t.Name, p, err))
			}
			for _, d := range l.Damage() {
				// The bridge's cursor is the log's retention floor: damage
				// below it was declared lost to the core (and counted).
				handled := d.To <= l.RetentionFloor() && l.RetentionFloor() != math.MaxInt64
				h.Damaged = append(h.Damaged, damageReport{Stream: t.Name, Partition: p, Damage: d, DeclaredLost: handled})
				if !handled {
					worse(StatusFailing, fmt.Sprintf("%s-%d damaged: offsets %d to %d unreadable (%s at byte %d), not yet declared lost by the bridge",
						t.Name, p, d.From, d.To-1, d.Segment, d.Position))
				}
			}
		}
	}
	if b := h.BudgetBytes; b > 0 && float64(h.LogBytes) >= float64(b)*hc.BudgetPercent/100 {
		worse(StatusDegraded, fmt.Sprintf("disk budget %.0f%% used (%d of %d bytes; degraded above %g%%)",
			100*float64(h.LogBytes)/float64(b), h.LogBytes, b, hc.BudgetPercent))
	}
	if fn := g.statusSource("bridge"); fn != nil {
		if st, ok := fn().(bridge.Status); ok {
			bh := &bridgeHealth{}
			for _, p := range st.Partitions {
				bh.BacklogRecords += p.BacklogRecords
				bh.MaxLastAckAgeSeconds = max(bh.MaxLastAckAgeSeconds, p.LastAckAge.Seconds())
				if p.BacklogRecords > 0 && p.LastAckAge > hc.BridgeAckTimeout {
					reason := fmt.Sprintf("bridge: %s-%d has %d records waiting, no acknowledgement from the core for %s (degraded after %s)",
						p.Stream, p.Partition, p.BacklogRecords, p.LastAckAge.Round(time.Second), hc.BridgeAckTimeout)
					if p.LastError != "" {
						reason += "; last error: " + p.LastError
					}
					worse(StatusDegraded, reason)
				}
			}
			h.Bridge = bh
		}
	}
	if fn := g.statusSource("aggregations"); fn != nil {
		h.Aggregations = fn()
	}
	return h
}

// Readiness is the body of /readyz.
type Readiness = health.Readiness

// Readiness reports whether the gateway takes publishes: the logs are open
// (Open did that) and Run has started the MQTT listeners and not begun
// shutting down.
func (g *Gateway) Readiness() Readiness {
	r := Readiness{Reasons: []string{}}
	if !g.serving.Load() {
		r.Reasons = append(r.Reasons, "mqtt listeners not serving: starting or shutting down")
	}
	r.Ready = len(r.Reasons) == 0
	return r
}

// budgetGauge exports the disk budget next to tributary_edge_log_bytes, so
// a dashboard or alert can divide one by the other.
func (g *Gateway) budgetGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tributary_edge_budget_bytes",
		Help: "The disk budget of the edge logs (ingest.budget_bytes); 0 when there is none.",
	}, func() float64 { return float64(g.cfg.Ingest.BudgetBytes) })
}
