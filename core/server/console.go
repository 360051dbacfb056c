package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/internal/console"
	"github.com/tributary-io/tributary/internal/flagcheck"
	"github.com/tributary-io/tributary/internal/render"
	"github.com/tributary-io/tributary/storage"
)

// The web console: a read-only page for people, served on its own listener
// (console_addr; off by default) from files embedded in the binary, and the
// small JSON API the page polls:
//
//	GET /api/v1/overview  this broker's health, the brokers, topics (records,
//	                      bytes, end offsets; the page turns successive polls
//	                      into rates) and consumer groups with lag per partition
//	GET /api/v1/edges     status and bridge of each edge in console_edges,
//	                      fetched from the edges' own HTTP API
//	GET /api/v1/readings?topic=T[&device=D][&n=N]  the devices seen in the newest
//	                      records of T and the last N readings of D, decoded
//
// Nothing here writes. Only GET is served; the page needs no build step and
// loads nothing from elsewhere.

// The page's files are in internal/console, with the edge's.
var consoleFiles = console.Core

// Console bounds.
const (
	consoleMaxReadings = 1000
	consoleScanRecords = 5000 // newest records per partition searched for a device
	consoleEdgeTimeout = 2 * time.Second
)

// startConsole binds console_addr and serves until the server's context
// ends; a no-op when it is empty or "-".
func (s *Server) startConsole() error {
	if flagcheck.Disabled(s.cfg.ConsoleAddr) {
		return nil
	}
	static, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.ConsoleAddr)
	if err != nil {
		return fmt.Errorf("listen console %s: %w", s.cfg.ConsoleAddr, err)
	}
	s.consoleLn = ln
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/v1/overview", s.consoleOverview)
	mux.HandleFunc("GET /api/v1/edges", s.consoleEdges)
	mux.HandleFunc("GET /api/v1/readings", s.consoleReadings)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("console stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		<-s.ctx.Done()
		_ = srv.Close()
	}()
	return nil
}

// ConsoleAddr is the console listener's bound address, or "" when off.
func (s *Server) ConsoleAddr() string {
	if s.consoleLn == nil {
		return ""
	}
	return s.consoleLn.Addr().String()
}

// ConsoleOverview is the body of /api/v1/overview.
type ConsoleOverview struct {
	Time      time.Time       `json:"time"`
	NodeID    int32           `json:"node_id"`
	ClusterID string          `json:"cluster_id"`
	Health    Health          `json:"health"`
	Ready     Readiness       `json:"ready"`
	Brokers   []ConsoleBroker `json:"brokers"`
	Topics    []ConsoleTopic  `json:"topics"`
	Groups    []ConsoleGroup  `json:"groups"`
}

// ConsoleBroker is one broker as the metadata knows it.
type ConsoleBroker struct {
	ID         int32  `json:"id"`
	KafkaAddr  string `json:"kafka_addr"`
	Alive      bool   `json:"alive"`
	Controller bool   `json:"controller"`
	Self       bool   `json:"self"`
	Leads      int    `json:"leads"` // partitions it leads
}

// ConsoleTopic sums a topic's partitions (the leaders' copies).
type ConsoleTopic struct {
	Name            string `json:"name"`
	Internal        bool   `json:"internal,omitempty"`
	Partitions      int    `json:"partitions"`
	Records         int64  `json:"records"`     // held: high watermark minus start offset
	EndOffsets      int64  `json:"end_offsets"` // sum of high watermarks: its growth is the message rate
	Bytes           int64  `json:"bytes"`
	UnderReplicated int    `json:"under_replicated"`
	Offline         int    `json:"offline"`
	Known           bool   `json:"known"` // offsets known here (a leader copy is local)
}

// ConsoleGroup is one consumer group's committed offsets and lag.
type ConsoleGroup struct {
	Group      string     `json:"group"`
	Lag        int64      `json:"lag"`
	Partitions []GroupLag `json:"partitions"`
}

func (s *Server) consoleOverview(w http.ResponseWriter, _ *http.Request) {
	o := ConsoleOverview{Time: time.Now().UTC(), NodeID: s.cfg.NodeID, ClusterID: s.cfg.ClusterID,
		Health: s.Health(), Ready: s.Readiness(), Brokers: []ConsoleBroker{}, Topics: []ConsoleTopic{}, Groups: []ConsoleGroup{}}
	leads := map[int32]int{}
	byName := map[string]*ConsoleTopic{}
	for _, v := range s.Partitions() {
		t := byName[v.Topic]
		if t == nil {
			t = &ConsoleTopic{Name: v.Topic, Internal: v.Topic == cluster.OffsetsTopic}
			byName[v.Topic] = t
		}
		t.Partitions++
		leads[v.Leader]++
		if v.UnderReplicated {
			t.UnderReplicated++
		}
		if v.Offline {
			t.Offline++
		}
		if v.hosted && v.Leading {
			t.Known = true
			t.Records += v.HighWatermark - v.StartOffset
			t.EndOffsets += v.HighWatermark
			t.Bytes += v.Bytes
		}
	}
	for _, t := range byName {
		o.Topics = append(o.Topics, *t)
	}
	sort.Slice(o.Topics, func(i, j int) bool { return o.Topics[i].Name < o.Topics[j].Name })
	ctrl, hasCtrl := s.cluster.Controller()
	for _, b := range s.cluster.Metadata().Brokers {
		o.Brokers = append(o.Brokers, ConsoleBroker{ID: b.ID, KafkaAddr: b.KafkaAddr, Alive: b.Alive,
			Controller: hasCtrl && ctrl == b.ID, Self: b.ID == s.cfg.NodeID, Leads: leads[b.ID]})
	}
	sort.Slice(o.Brokers, func(i, j int) bool { return o.Brokers[i].ID < o.Brokers[j].ID })
	for _, l := range s.GroupLags() {
		if n := len(o.Groups); n == 0 || o.Groups[n-1].Group != l.Group {
			o.Groups = append(o.Groups, ConsoleGroup{Group: l.Group})
		}
		g := &o.Groups[len(o.Groups)-1]
		g.Partitions = append(g.Partitions, l)
		g.Lag += max(0, l.Lag)
	}
	writeHealthJSON(w, http.StatusOK, o)
}

// ConsoleEdge is one configured edge's own answers (or why there are none).
type ConsoleEdge struct {
	URL    string          `json:"url"`
	Time   time.Time       `json:"time"` // when the core asked (the page's rates use it)
	Error  string          `json:"error,omitempty"`
	Status json.RawMessage `json:"status,omitempty"`
	Bridge json.RawMessage `json:"bridge,omitempty"`
	Health json.RawMessage `json:"health,omitempty"`
}

func (s *Server) consoleEdges(w http.ResponseWriter, r *http.Request) {
	out := make([]ConsoleEdge, len(s.cfg.ConsoleEdges))
	client := &http.Client{Timeout: consoleEdgeTimeout}
	var wg sync.WaitGroup
	for i, base := range s.cfg.ConsoleEdges {
		base = strings.TrimRight(base, "/")
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		out[i].URL, out[i].Time = base, time.Now().UTC()
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := &out[i]
			var errs []string
			get := func(path string, okCodes ...int) json.RawMessage {
				b, code, err := edgeGet(r.Context(), client, base+path)
				if err != nil {
					errs = append(errs, err.Error())
					return nil
				}
				for _, c := range okCodes {
					if code == c {
						return b
					}
				}
				errs = append(errs, fmt.Sprintf("%s: HTTP %d", path, code))
				return nil
			}
			e.Status = get("/api/v1/status", http.StatusOK)
			e.Health = get("/healthz", http.StatusOK, http.StatusServiceUnavailable)
			e.Bridge = get("/api/v1/bridge", http.StatusOK, http.StatusNotFound)
			e.Error = strings.Join(errs, "; ")
		}()
	}
	wg.Wait()
	writeHealthJSON(w, http.StatusOK, out)
}

func edgeGet(ctx context.Context, c *http.Client, url string) (json.RawMessage, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, 0, err
	}
	if !json.Valid(b) {
		return nil, resp.StatusCode, fmt.Errorf("%s: not JSON", url)
	}
	return b, resp.StatusCode, nil
}

// ConsoleReadings is the body of /api/v1/readings.
type ConsoleReadings struct {
	Topic    string           `json:"topic"`
	Device   string           `json:"device"`
	Devices  []string         `json:"devices"`
	Readings []ConsoleReading `json:"readings"`
}

// ConsoleReading is one record of the chosen device, its value decoded.
type ConsoleReading struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Timestamp time.Time `json:"timestamp"`
	Format    string    `json:"format"`
	Value     any       `json:"value"`
}

func (s *Server) consoleReadings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topic, device := q.Get("topic"), q.Get("device")
	n := 200
	if v := q.Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > consoleMaxReadings {
			writeHealthJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("n=%q: want 1 to %d", v, consoleMaxReadings)})
			return
		}
	}
	out := ConsoleReadings{Topic: topic, Device: device, Devices: []string{}, Readings: []ConsoleReading{}}
	seen := map[string]bool{}
	found := false
	for _, v := range s.Partitions() {
		if v.Topic != topic || !v.hosted || !v.Leading {
			continue
		}
		found = true
		l := s.localLog(v.Topic, v.Partition)
		if l == nil {
			continue
		}
		recs, err := storage.ReadRecords(l, max(v.StartOffset, v.HighWatermark-consoleScanRecords), v.HighWatermark)
		if err != nil {
			err = fmt.Errorf("%s: %w", l.Dir(), err)
			writeHealthJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		for _, rec := range recs {
			key := string(rec.Key)
			seen[key] = true
			if key != device || device == "" {
				continue
			}
			ct := ""
			for _, h := range rec.Headers {
				if h.Key == "content-type" {
					ct = string(h.Value)
				}
			}
			val := render.Decode(ct, rec.Value)
			out.Readings = append(out.Readings, ConsoleReading{Partition: v.Partition, Offset: rec.Offset,
				Timestamp: time.UnixMilli(rec.Timestamp).UTC(), Format: val.Format, Value: val.Data})
		}
	}
	if !found {
		writeHealthJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no topic %q led by this broker", topic)})
		return
	}
	for k := range seen {
		out.Devices = append(out.Devices, k)
	}
	sort.Strings(out.Devices)
	sort.SliceStable(out.Readings, func(i, j int) bool { return out.Readings[i].Timestamp.Before(out.Readings[j].Timestamp) })
	if len(out.Readings) > n {
		out.Readings = out.Readings[len(out.Readings)-n:]
	}
	writeHealthJSON(w, http.StatusOK, out)
}

// localLog is this broker's log of a partition, or nil.
func (s *Server) localLog(topic string, p int32) *storage.Log {
	r, err := s.replicas.lookup(topic, p)
	if err != nil {
		return nil
	}
	return r.log
}
