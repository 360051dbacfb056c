package server

import (
	"fmt"
	"net/http"
	"sort"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/internal/health"
	"github.com/tributary-io/tributary/storage"
)

// Health and readiness, on the HTTP listener:
//
//	GET /healthz  {"status": "ok"|"degraded"|"failing", "reasons": [...]}: 200 for
//	              ok and degraded, 503 for failing (a load balancer or systemd
//	              watchdog pulls a failing broker, not a degraded one)
//	GET /readyz   {"ready": bool, "reasons": [...]}: 200 once the listeners are up
//	              and, in a cluster, the metadata has caught up and a controller is
//	              known; 503 before that and while shutting down
//
// Failing: a local partition is read-only or holds a damaged range, or a
// partition has no leader (offline). Degraded: a partition's ISR is smaller
// than its replica set (under-replicated).

// Health statuses, worst last.
const (
	StatusOK       = health.StatusOK
	StatusDegraded = health.StatusDegraded
	StatusFailing  = health.StatusFailing
)

// Health is the body of /healthz.
type Health struct {
	Status  string   `json:"status"`
	Reasons []string `json:"reasons"`
	NodeID  int32    `json:"node_id"`
}

// PartitionView is one partition as this broker sees it: metadata (leader,
// replicas, ISR) and, where the log is hosted here, its offsets and size.
type PartitionView struct {
	Topic           string           `json:"topic"`
	Partition       int32            `json:"partition"`
	Leader          int32            `json:"leader"` // -1: offline
	Replicas        []int32          `json:"replicas"`
	ISR             []int32          `json:"isr"`
	Leading         bool             `json:"leading"` // this broker leads it
	StartOffset     int64            `json:"start_offset"`
	EndOffset       int64            `json:"end_offset"`     // the log end: next offset to be written
	HighWatermark   int64            `json:"high_watermark"` // what consumers may read
	Bytes           int64            `json:"bytes"`
	UnderReplicated bool             `json:"under_replicated,omitempty"`
	Offline         bool             `json:"offline,omitempty"`
	ReadOnly        string           `json:"read_only,omitempty"`
	Damaged         []storage.Damage `json:"damaged,omitempty"`

	hosted bool // the log is on this broker: the offsets above are set
}

// Partitions reports every partition of every topic, sorted by topic and
// partition, from the metadata; only the replicas hosted here carry offsets.
func (s *Server) Partitions() []PartitionView {
	var out []PartitionView
	local := func(v *PartitionView, l *storage.Log) {
		v.StartOffset, v.EndOffset, v.HighWatermark, v.Bytes = l.StartOffset(), l.NextOffset(), l.NextOffset(), l.Size()
		if err := l.ReadOnlyReason(); err != nil {
			v.ReadOnly = err.Error()
		}
		v.Damaged = l.Damage()
		v.hosted = true
	}
	md := s.cluster.Metadata()
	for _, t := range md.Topics {
		for _, ps := range t.Partitions {
			v := PartitionView{Topic: t.Name, Partition: ps.Partition, Leader: ps.Leader,
				Replicas: append([]int32(nil), ps.Replicas...), ISR: append([]int32(nil), ps.ISR...),
				Leading: ps.Leader == s.cfg.NodeID}
			v.Offline = ps.Leader == cluster.NoLeader
			v.UnderReplicated = len(ps.ISR) < len(ps.Replicas)
			if r, err := s.replicas.lookup(t.Name, ps.Partition); err == nil {
				local(&v, r.log)
				v.HighWatermark = r.highWatermark()
			}
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// Health judges the broker: see the comment at the top of this file.
func (s *Server) Health() Health {
	h := Health{Status: StatusOK, Reasons: []string{}, NodeID: s.cfg.NodeID}
	worse := func(status, reason string) { health.Worse(&h.Status, &h.Reasons, status, reason) }
	if s.ctx.Err() != nil {
		worse(StatusFailing, "shutting down")
		return h
	}
	for _, v := range s.Partitions() {
		name := fmt.Sprintf("%s/%d", v.Topic, v.Partition)
		if v.ReadOnly != "" {
			worse(StatusFailing, fmt.Sprintf("%s read-only: %s", name, v.ReadOnly))
		}
		for _, d := range v.Damaged {
			worse(StatusFailing, fmt.Sprintf("%s damaged: offsets %d to %d unreadable (%s at byte %d): %s",
				name, d.From, d.To-1, d.Segment, d.Position, d.Reason))
		}
		switch {
		case v.Offline:
			worse(StatusFailing, fmt.Sprintf("%s offline: no in-sync replica is alive to lead it (replicas %v, isr %v)", name, v.Replicas, v.ISR))
		case v.UnderReplicated:
			worse(StatusDegraded, fmt.Sprintf("%s under-replicated: isr %v of replicas %v", name, v.ISR, v.Replicas))
		}
	}
	return h
}

// serveHealth answers /healthz with Health as JSON (200 for ok and
// degraded, 503 for failing) and /readyz with Readiness.
func (s *Server) serveHealth(mux *http.ServeMux) {
	health.Serve(mux, func() (string, any) { h := s.Health(); return h.Status, h }, s.Readiness)
}

// Readiness is the body of /readyz.
type Readiness = health.Readiness

// Readiness reports whether the broker can serve clients: listeners bound,
// logs loaded (both done before Start returns), and the cluster metadata
// caught up with a controller known (at once for a broker alone).
func (s *Server) Readiness() Readiness {
	r := Readiness{Reasons: []string{}}
	if s.ctx.Err() != nil {
		r.Reasons = append(r.Reasons, "shutting down")
	}
	if s.ln == nil {
		r.Reasons = append(r.Reasons, "kafka listener not bound")
	}
	if !s.cluster.MetadataCurrent() || !s.replicas.ready.Load() {
		r.Reasons = append(r.Reasons, "cluster metadata not caught up yet")
	}
	if _, ok := s.cluster.Controller(); !ok {
		r.Reasons = append(r.Reasons, "no controller known: cluster not formed")
	}
	r.Ready = len(r.Reasons) == 0
	return r
}

// writeHealthJSON is health.WriteJSON (the console's endpoints use it too).
var writeHealthJSON = health.WriteJSON
