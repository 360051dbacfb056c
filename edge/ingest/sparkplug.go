package ingest

import (
	"fmt"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tributary-io/tributary/edge/payload"
	"github.com/tributary-io/tributary/edge/rules"
	"github.com/tributary-io/tributary/edge/sparkplug"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// SparkplugConfig bounds the Sparkplug B state.
type SparkplugConfig struct {
	// MaxNodes is how many edge nodes' births are kept (default: the
	// sparkplug package's, 10,000).
	MaxNodes int `yaml:"max_nodes"`
	// RestoreBytes is how much of the end of each partition is read at
	// start-up to find the stored births (default 64 MiB). A node whose
	// last birth lies further back is flagged "before birth" until it
	// sends a new one.
	RestoreBytes int64 `yaml:"restore_bytes"`
}

// Sparkplug record headers besides the tracker's flags.
const (
	// HeaderSparkplugType is the message type (NBIRTH, NDATA, ...).
	HeaderSparkplugType = "sparkplug-type"
	// HeaderSparkplugPayload holds the original protobuf bytes when the
	// rule's decode puts the JSON rendering in the value.
	HeaderSparkplugPayload = "sparkplug-payload"
)

type sparkplugState struct {
	tracker *sparkplug.Tracker
	restore int64
}

func newSparkplugState(c SparkplugConfig) *sparkplugState {
	if c.RestoreBytes <= 0 {
		c.RestoreBytes = 64 << 20
	}
	return &sparkplugState{tracker: sparkplug.NewTracker(c.MaxNodes), restore: c.RestoreBytes}
}

var typeHeaders = map[string][]byte{}

func init() {
	for _, t := range []string{sparkplug.NBIRTH, sparkplug.NDEATH, sparkplug.NDATA, sparkplug.NCMD,
		sparkplug.DBIRTH, sparkplug.DDEATH, sparkplug.DDATA, sparkplug.DCMD, sparkplug.STATE} {
		typeHeaders[t] = []byte(t)
	}
}

// sparkplugDecode reads a Sparkplug B message: the topic names its type
// and node, the payload is decoded within the package's limits and checked
// against the node's birth state; anomalies become headers and counts,
// never drops. With decode the value becomes the JSON rendering and the
// protobuf moves to the sparkplug-payload header.
func (h *Hook) sparkplugDecode(d *decoded, r *rules.Rule, pk *packets.Packet, rec *recordbatch.Record) error {
	top, err := sparkplug.ParseTopic(pk.TopicName)
	if err != nil {
		d.deadKind = DeadSparkplug
		return fmt.Errorf("%w: %v", payload.ErrInvalid, err)
	}
	rec.Headers = append(rec.Headers, recordbatch.RecordHeader{Key: HeaderSparkplugType, Value: typeHeaders[top.Type]})
	if top.Type == sparkplug.STATE { // host application state: JSON
		if err := payload.CheckJSON(pk.Payload, &r.Limits); err != nil {
			d.deadKind = DeadSparkplug
			return err
		}
		d.ct = payload.ContentJSON
		return nil
	}
	p, err := sparkplug.Decode(pk.Payload)
	if err != nil {
		d.deadKind = DeadSparkplug
		return fmt.Errorf("%w: %v", payload.ErrInvalid, err)
	}
	res := h.spark.tracker.Observe(top, p)
	for _, a := range res.Anomalies() {
		h.m.sparkplug.WithLabelValues(a).Inc()
	}
	for _, hd := range res.Headers() {
		rec.Headers = append(rec.Headers, recordbatch.RecordHeader{Key: hd[0], Value: []byte(hd[1])})
	}
	d.ct = payload.ContentSparkplug
	if p.HasTimestamp() {
		d.timeMs, d.hasTime = int64(p.GetTimestamp()), true
	}
	if r.Decode {
		js, err := sparkplug.RenderJSON(top, p, h.spark.tracker)
		if err != nil {
			d.deadKind = DeadSparkplug
			return fmt.Errorf("%w: sparkplug render: %v", payload.ErrInvalid, err)
		}
		rec.Value = js
		d.ct = payload.ContentJSON
		rec.Headers = append(rec.Headers, recordbatch.RecordHeader{Key: HeaderSparkplugPayload, Value: pk.Payload})
	}
	return nil
}

// restoreSparkplug rebuilds the birth state from the births and deaths
// stored in the last RestoreBytes of every partition (in log order; a
// node's messages share its key, so one partition holds them in order).
func (h *Hook) restoreSparkplug() {
	var spb []*rules.Rule
	for _, r := range h.rules.Rules() {
		if r.Format == payload.FormatSparkplug {
			spb = append(spb, r)
		}
	}
	if len(spb) == 0 {
		return
	}
	start, n := time.Now(), 0
	for _, t := range h.topics.List() {
		if h.isDeadLetter(t.Name) || !mayHoldSparkplug(spb, t.Name) {
			continue // only streams a sparkplug-b rule writes are read
		}
		for p := int32(0); p < t.Partitions; p++ {
			l, err := h.topics.Partition(t.Name, p)
			if err != nil {
				h.log.Warn("sparkplug restore: open partition", "stream", t.Name, "partition", p, "err", err)
				continue
			}
			err = forTail(l, h.spark.restore, func(rec recordbatch.Record) {
				if h.restoreRecord(rec) {
					n++
				}
			})
			if err != nil {
				h.log.Warn("sparkplug restore: partition tail unreadable", "stream", t.Name, "partition", p, "err", err)
			}
		}
	}
	if n > 0 {
		h.log.Info("sparkplug births restored from the logs", "messages", n, "nodes", h.spark.tracker.Counters().Nodes,
			"took", time.Since(start).Round(time.Millisecond))
	}
}

func mayHoldSparkplug(rs []*rules.Rule, stream string) bool {
	for _, r := range rs {
		if r.MayWriteStream(stream) {
			return true
		}
	}
	return false
}

func (h *Hook) restoreRecord(rec recordbatch.Record) bool {
	typ, _ := header(rec, HeaderSparkplugType)
	topic, _ := header(rec, HeaderMQTTTopic)
	body, ok := header(rec, HeaderSparkplugPayload)
	if !ok {
		body = rec.Value
	}
	switch string(typ) {
	case sparkplug.NBIRTH, sparkplug.DBIRTH, sparkplug.NDEATH, sparkplug.DDEATH:
	default:
		return false
	}
	top, err := sparkplug.ParseTopic(string(topic))
	if err != nil {
		return false
	}
	p, err := sparkplug.Decode(body)
	if err != nil {
		return false
	}
	h.spark.tracker.Restore(top, p)
	return true
}
