package gateway

import (
	"fmt"
	"math"
	"net/http"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/tributary-io/tributary/internal/health"
	"github.com/tributary-io/tributary/internal/render"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// The edge's read-only JSON API, served on the HTTP listener next to
// /metrics and /healthz, for the tributary CLI (tributary edge ...) and a
// person with curl:
//
//	GET /api/v1/status   identity, version, uptime, disk use and budget, ingest counts, damage
//	GET /api/v1/streams  every stream's partitions: offsets, record counts, bytes
//	GET /api/v1/bridge   the bridge's per-partition cursor, backlog and last ack (404 when off)
//	GET /api/v1/aggregations  each aggregation's status (lag, windows open, last checkpoint)
//	GET /api/v1/tail?stream=S&n=N[&partition=P]  the last N records, values decoded
//
// Nothing here writes: the API reads the logs and counters the daemon
// already keeps.

// maxTail bounds one tail answer.
const maxTail = 1000

// apiState is what the API keeps beside the gateway: when it opened, and
// the status sources attached components registered.
type apiState struct {
	opened  time.Time
	mu      sync.Mutex
	sources map[string]func() any
}

// SetStatusSource makes fn's answer (marshalled as JSON) the body of
// /api/v1/<name>; the bridge registers itself as "bridge". A nil fn removes
// the source. Safe to call at any time.
func (g *Gateway) SetStatusSource(name string, fn func() any) {
	g.api.mu.Lock()
	defer g.api.mu.Unlock()
	if g.api.sources == nil {
		g.api.sources = map[string]func() any{}
	}
	if fn == nil {
		delete(g.api.sources, name)
		return
	}
	g.api.sources[name] = fn
}

func (g *Gateway) statusSource(name string) func() any {
	g.api.mu.Lock()
	defer g.api.mu.Unlock()
	return g.api.sources[name]
}

func (g *Gateway) registerAPI(mux *http.ServeMux) {
	g.api.opened = time.Now()
	mux.HandleFunc("GET /api/v1/status", g.apiStatus)
	mux.HandleFunc("GET /api/v1/streams", g.apiStreams)
	mux.HandleFunc("GET /api/v1/bridge", g.apiBridge)
	mux.HandleFunc("GET /api/v1/aggregations", g.apiAggregations)
	mux.HandleFunc("GET /api/v1/tail", g.apiTail)
}

func apiError(w http.ResponseWriter, code int, format string, args ...any) {
	health.WriteJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// Status is the body of /api/v1/status.
type Status struct {
	EdgeID        string    `json:"edge_id"`
	Version       string    `json:"version"`
	Commit        string    `json:"commit,omitempty"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	MQTTAddr      string    `json:"mqtt_addr,omitempty"`
	LogBytes      int64     `json:"log_bytes"`
	BudgetBytes   int64     `json:"budget_bytes"` // 0: no budget
	BudgetPolicy  string    `json:"budget_policy,omitempty"`
	Streams       int       `json:"streams"`
	Bridge        string    `json:"bridge"` // "on" or "off"
	// Counts since the daemon started (the Prometheus counters).
	Appended      float64            `json:"appended"`
	DeadLetters   float64            `json:"dead_letters"`
	Refused       map[string]float64 `json:"refused"` // by reason
	Dropped       float64            `json:"dropped"`
	Duplicates    float64            `json:"duplicates"`
	Connects      map[string]float64 `json:"connects"`
	DamagedRanges int                `json:"damaged_ranges"`
	ReadOnly      []string           `json:"read_only,omitempty"`
}

func (g *Gateway) apiStatus(w http.ResponseWriter, _ *http.Request) {
	c := g.hook.Counts()
	st := Status{
		EdgeID: g.edgeID, Version: "(devel)", Started: g.api.opened,
		UptimeSeconds: math.Round(time.Since(g.api.opened).Seconds()*10) / 10,
		MQTTAddr:      g.mqttAddr, LogBytes: g.topics.TotalSize(), BudgetBytes: g.cfg.Ingest.BudgetBytes,
		Streams: len(g.topics.List()), Bridge: "off",
		Appended: c.Appended, DeadLetters: c.DeadLetters, Refused: c.Refused, Dropped: c.Dropped,
		Duplicates: c.Duplicates, Connects: c.Connects, DamagedRanges: g.topics.DamagedRanges(),
	}
	if st.BudgetBytes > 0 {
		st.BudgetPolicy = string(g.cfg.Ingest.WithDefaults().BudgetPolicy)
	}
	if g.statusSource("bridge") != nil {
		st.Bridge = "on"
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		st.Version = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				st.Commit = s.Value
			}
		}
	}
	for _, t := range g.topics.List() {
		for p := int32(0); p < t.Partitions; p++ {
			if l, err := g.topics.Partition(t.Name, p); err == nil && l.ReadOnlyReason() != nil {
				st.ReadOnly = append(st.ReadOnly, fmt.Sprintf("%s-%d: %v", t.Name, p, l.ReadOnlyReason()))
			}
		}
	}
	health.WriteJSON(w, http.StatusOK, st)
}

// StreamInfo is one stream in /api/v1/streams.
type StreamInfo struct {
	Stream     string          `json:"stream"`
	Partitions []PartitionInfo `json:"partitions"`
	Records    int64           `json:"records"`
	Bytes      int64           `json:"bytes"`
}

// PartitionInfo is one partition log of a stream.
type PartitionInfo struct {
	Partition   int32  `json:"partition"`
	StartOffset int64  `json:"start_offset"`
	EndOffset   int64  `json:"end_offset"` // the next offset to be written
	Records     int64  `json:"records"`
	Bytes       int64  `json:"bytes"`
	Damaged     int    `json:"damaged_ranges,omitempty"`
	ReadOnly    string `json:"read_only,omitempty"`
}

func (g *Gateway) apiStreams(w http.ResponseWriter, _ *http.Request) {
	out := []StreamInfo{}
	for _, t := range g.topics.List() {
		si := StreamInfo{Stream: t.Name, Partitions: []PartitionInfo{}}
		for p := int32(0); p < t.Partitions; p++ {
			l, err := g.topics.Partition(t.Name, p)
			if err != nil {
				continue
			}
			pi := PartitionInfo{Partition: p, StartOffset: l.StartOffset(), EndOffset: l.NextOffset(),
				Bytes: l.Size(), Damaged: len(l.Damage())}
			pi.Records = pi.EndOffset - pi.StartOffset
			if err := l.ReadOnlyReason(); err != nil {
				pi.ReadOnly = err.Error()
			}
			si.Records += pi.Records
			si.Bytes += pi.Bytes
			si.Partitions = append(si.Partitions, pi)
		}
		out = append(out, si)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	health.WriteJSON(w, http.StatusOK, out)
}

func (g *Gateway) apiBridge(w http.ResponseWriter, _ *http.Request) {
	fn := g.statusSource("bridge")
	if fn == nil {
		apiError(w, http.StatusNotFound, "bridge off: this edge has no bridge.brokers configured; readings stay on the edge")
		return
	}
	health.WriteJSON(w, http.StatusOK, fn())
}

func (g *Gateway) apiAggregations(w http.ResponseWriter, _ *http.Request) {
	fn := g.statusSource("aggregations")
	if fn == nil {
		health.WriteJSON(w, http.StatusOK, []any{})
		return
	}
	health.WriteJSON(w, http.StatusOK, fn())
}

// TailRecord is one record in /api/v1/tail, its value decoded like the
// CLI's consume does.
type TailRecord struct {
	Stream    string            `json:"stream"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp time.Time         `json:"timestamp"`
	Key       string            `json:"key,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Format    string            `json:"format"`
	Value     any               `json:"value"`
}

func (g *Gateway) apiTail(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stream := q.Get("stream")
	info, ok := g.topics.Get(stream)
	if stream == "" || !ok {
		apiError(w, http.StatusNotFound, "no stream %q (GET /api/v1/streams lists them)", stream)
		return
	}
	n := 10
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > maxTail {
			apiError(w, http.StatusBadRequest, "n=%q: want a count from 1 to %d", s, maxTail)
			return
		}
		n = v
	}
	parts := make([]int32, 0, info.Partitions)
	if s := q.Get("partition"); s != "" {
		p, err := strconv.Atoi(s)
		if err != nil || p < 0 || int32(p) >= info.Partitions {
			apiError(w, http.StatusBadRequest, "partition=%q: stream %s has partitions 0 to %d", s, stream, info.Partitions-1)
			return
		}
		parts = append(parts, int32(p))
	} else {
		for p := int32(0); p < info.Partitions; p++ {
			parts = append(parts, p)
		}
	}
	out := []TailRecord{}
	for _, p := range parts {
		l, err := g.topics.Partition(stream, p)
		if err != nil {
			continue
		}
		end := l.NextOffset()
		recs, err := storage.ReadRecords(l, max(l.StartOffset(), end-int64(n)), end)
		if err != nil {
			apiError(w, http.StatusInternalServerError, "read %s-%d: %v", stream, p, err)
			return
		}
		for _, rec := range recs {
			out = append(out, tailRecord(stream, p, rec))
		}
	}
	// The newest n across partitions, oldest first.
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Timestamp.Equal(out[j].Timestamp) {
			return out[i].Timestamp.Before(out[j].Timestamp)
		}
		return out[i].Partition < out[j].Partition || out[i].Partition == out[j].Partition && out[i].Offset < out[j].Offset
	})
	if len(out) > n {
		out = out[len(out)-n:]
	}
	health.WriteJSON(w, http.StatusOK, out)
}

func tailRecord(stream string, p int32, r recordbatch.Record) TailRecord {
	tr := TailRecord{Stream: stream, Partition: p, Offset: r.Offset, Timestamp: time.UnixMilli(r.Timestamp).UTC(), Key: string(r.Key)}
	ct := ""
	if len(r.Headers) > 0 {
		tr.Headers = map[string]string{}
		for _, h := range r.Headers {
			tr.Headers[h.Key] = string(h.Value)
			if h.Key == "content-type" {
				ct = string(h.Value)
			}
		}
	}
	v := render.Decode(ct, r.Value)
	tr.Format, tr.Value = v.Format, v.Data
	return tr
}
