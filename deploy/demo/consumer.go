package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/firmware-sim/reading"
)

// latest is the newest reading seen from one device.
type latest struct {
	Reading reading.Reading
	EdgeID  string
	// Latency is device time to consumer receipt for this reading.
	Latency time.Duration
}

// topicTotals is what the consumer saw of one topic since it started.
type topicTotals struct {
	Records float64
	// Lag is high watermark minus the group's position, summed over the
	// partitions it was assigned, as of each partition's latest fetch.
	Lag int64
}

// window is one aggregated record (internal/stream's JSON output) of the
// demo edges' aggregation.
type window struct {
	Group       string `json:"group"`
	WindowStart int64  `json:"window_start"`
	WindowEnd   int64  `json:"window_end"`
	Count       int64  `json:"count"`
	Temp        struct {
		Min  float64 `json:"min"`
		Max  float64 `json:"max"`
		Mean float64 `json:"mean"`
		P99  float64 `json:"p99"`
	} `json:"temp"`
	EdgeID string `json:"-"`
}

// headerStreamID marks a record an aggregation wrote (internal/stream.HeaderID).
const headerStreamID = "tributary-stream-id"

// consumerStats is a copy of the consumer's counters for one view refresh.
type consumerStats struct {
	Topics map[string]topicTotals
	Latest map[string]latest
	// Windows holds, per aggregated topic, the latest window of each shown device.
	Windows map[string]map[string]window
	// Latencies are the device-to-consumer delays of the readings received
	// since the previous copy (bounded sample).
	Latencies []time.Duration
	// Undecodable counts records whose value is not a reading.
	Undecodable float64
	Err         string
}

// maxLatencySamples bounds the memory kept between two refreshes.
const maxLatencySamples = 20000

// consumer reads every stream on the core in one consumer group and keeps
// just enough to draw the view.
type consumer struct {
	cl  *kgo.Client
	log *slog.Logger

	mu          sync.Mutex
	records     map[string]float64
	hwm, next   map[string]map[int32]int64
	latest      map[string]latest
	windows     map[string]map[string]window // topic → group → latest window
	latencies   []time.Duration
	undecodable float64
	lastErr     string
}

func newConsumer(brokers []string, group string, log *slog.Logger, opts ...kgo.Opt) (*consumer, error) {
	cl, err := kgo.NewClient(append(opts,
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("tributary-demo"),
		kgo.ConsumerGroup(group),
		// Every stream the bridges create, as they appear.
		kgo.ConsumeRegex(),
		kgo.ConsumeTopics(`^[^_].*`),
		kgo.MetadataMinAge(time.Second),
		kgo.MetadataMaxAge(3*time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("consumer client: %w", err)
	}
	return &consumer{
		cl: cl, log: log,
		records: map[string]float64{},
		hwm:     map[string]map[int32]int64{},
		next:    map[string]map[int32]int64{},
		latest:  map[string]latest{},
		windows: map[string]map[string]window{},
	}, nil
}

// run polls until ctx is done, then leaves the group, committing what was read.
func (c *consumer) run(ctx context.Context) {
	defer c.cl.Close()
	for {
		fetches := c.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		if fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			c.log.Warn("fetch", "topic", topic, "partition", p, "err", err)
			c.mu.Lock()
			c.lastErr = fmt.Sprintf("%s/%d: %v", topic, p, err)
			c.mu.Unlock()
		})
		now := time.Now()
		c.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.Err != nil {
				return
			}
			c.add(p.Topic, p.Partition, p.HighWatermark, p.Records, now)
		})
		c.mu.Unlock()
	}
}

// add records one fetched partition; c.mu is held.
func (c *consumer) add(topic string, partition int32, hwm int64, recs []*kgo.Record, now time.Time) {
	if c.hwm[topic] == nil {
		c.hwm[topic] = map[int32]int64{}
		c.next[topic] = map[int32]int64{}
	}
	c.hwm[topic][partition] = hwm
	for _, r := range recs {
		c.records[topic]++
		c.next[topic][partition] = r.Offset + 1
		var ct, edge string
		aggregated := false
		for _, h := range r.Headers {
			switch h.Key {
			case "content-type":
				ct = string(h.Value)
			case "edge-id":
				edge = string(h.Value)
			case headerStreamID:
				aggregated = true
			}
		}
		if aggregated {
			var w window
			if err := json.Unmarshal(r.Value, &w); err != nil {
				c.undecodable++
				continue
			}
			w.EdgeID = edge
			if c.windows == nil {
				c.windows = map[string]map[string]window{}
			}
			if c.windows[topic] == nil {
				c.windows[topic] = map[string]window{}
			}
			if prev, ok := c.windows[topic][w.Group]; !ok || prev.WindowEnd <= w.WindowEnd {
				c.windows[topic][w.Group] = w
			}
			continue
		}
		rd, err := reading.Decode(ct, r.Value)
		if err != nil {
			c.undecodable++
			continue
		}
		l := latest{Reading: rd, EdgeID: edge}
		if rd.TsMs > 0 {
			l.Latency = now.Sub(time.UnixMilli(rd.TsMs))
			if len(c.latencies) < maxLatencySamples {
				c.latencies = append(c.latencies, l.Latency)
			}
		}
		if prev, ok := c.latest[rd.Device]; !ok || prev.Reading.Seq <= rd.Seq {
			c.latest[rd.Device] = l
		}
	}
}

// stats copies the counters and takes the latency samples gathered since
// the last call.
func (c *consumer) stats(devices []string) consumerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := consumerStats{
		Topics:      map[string]topicTotals{},
		Latest:      map[string]latest{},
		Windows:     map[string]map[string]window{},
		Latencies:   c.latencies,
		Undecodable: c.undecodable,
		Err:         c.lastErr,
	}
	c.latencies = nil
	for topic, parts := range c.hwm {
		t := topicTotals{Records: c.records[topic]}
		for p, hwm := range parts {
			// A partition nothing was read from yet has an unknown position.
			next, ok := c.next[topic][p]
			if lag := hwm - next; ok && lag > 0 {
				t.Lag += lag
			}
		}
		s.Topics[topic] = t
	}
	for _, d := range devices {
		if l, ok := c.latest[d]; ok {
			s.Latest[d] = l
		}
		for topic, ws := range c.windows {
			if w, ok := ws[d]; ok {
				if s.Windows[topic] == nil {
					s.Windows[topic] = map[string]window{}
				}
				s.Windows[topic][d] = w
			}
		}
	}
	return s
}
