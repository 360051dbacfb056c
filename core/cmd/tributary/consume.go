package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/render"
)

type consumeOpts struct {
	from       string
	count      int
	partitions []int32
	group      string
	raw        bool
	exitAtEnd  bool
}

func consumeCmd(g *globals) *cobra.Command {
	var o consumeOpts
	c := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records, with CBOR and SenML values decoded to JSON",
		Long: `consume prints one JSON object per record (topic, partition, offset,
timestamp, key, headers, value). Values are decoded for people: CBOR and
SenML (JSON or CBOR, resolved per RFC 8428) become JSON, JSON stays JSON,
text stays text and anything else is base64; "format" says which. --raw
writes the value bytes as they are, one record per line. -o yaml prints YAML
documents instead.

--from picks where to start in each partition: start (default), end, an
offset N, -N (N records before the end), an RFC 3339 time, or a duration
(10m: records from ten minutes ago on). With --group the group's committed
offsets win and --from applies where it has none; what is printed is
committed when consume stops.

Sparkplug B payloads become JSON too (metrics with name, datatype and
value; DataSet and Template values stay base64).`,
		Example: `  tributary topic consume sensors -n 10
  tributary topic consume sensors --from 5m -e
  tributary topic consume sensors --group analytics --from end`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeTopics,
		RunE:              func(cmd *cobra.Command, args []string) error { return consume(cmd, g, args[0], o) },
	}
	f := c.Flags()
	f.StringVarP(&o.from, "from", "f", "start", "start, end, offset N, -N from the end, RFC 3339 time, or duration ago")
	f.IntVarP(&o.count, "num", "n", 0, "stop after this many records (0: no limit)")
	f.Int32SliceVarP(&o.partitions, "partition", "p", nil, "only these partitions (default all)")
	f.StringVarP(&o.group, "group", "g", "", "consume as this consumer group and commit what was printed")
	f.BoolVar(&o.raw, "raw", false, "write raw value bytes, one record per line")
	f.BoolVarP(&o.exitAtEnd, "exit-at-end", "e", false, "stop at the end of every partition as it was when consume started")
	return c
}

// startAt is where --from says to begin, before it is resolved per partition.
type startAt struct {
	kind   string // "start", "end", "offset", "relative", "time"
	offset int64
	millis int64
}

func parseFrom(s string, now time.Time) (startAt, error) {
	switch s {
	case "start", "beginning", "oldest", "earliest":
		return startAt{kind: "start"}, nil
	case "end", "newest", "latest":
		return startAt{kind: "end"}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || strings.HasPrefix(s, "-") {
			return startAt{kind: "relative", offset: -n}, nil
		}
		return startAt{kind: "offset", offset: n}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return startAt{kind: "time", millis: t.UnixMilli()}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return startAt{kind: "time", millis: now.Add(-d).UnixMilli()}, nil
	}
	return startAt{}, fmt.Errorf("--from %q: want start, end, an offset N, -N, an RFC 3339 time (2026-12-06T15:04:05Z) or a duration (10m)", s)
}

func consume(cmd *cobra.Command, g *globals, topic string, o consumeOpts) error {
	from, err := parseFrom(o.from, time.Now())
	if err != nil {
		return err
	}
	if o.group != "" && o.exitAtEnd {
		return errors.New("--exit-at-end works without --group only; use -n to bound a group consume")
	}
	if o.group != "" && len(o.partitions) > 0 {
		return errors.New("--partition works without --group only: the group assigns partitions")
	}
	admCl, adm, err := g.client()
	if err != nil {
		return err
	}
	defer admCl.Close()
	ctx := cmd.Context()

	lookCtx, cancel := g.ctx(cmd)
	starts, ends, err := bounds(lookCtx, adm, topic)
	cancel()
	if err != nil {
		return err
	}
	want := map[int32]bool{}
	for _, p := range o.partitions {
		if _, ok := ends[p]; !ok {
			return fmt.Errorf("topic %q has no partition %d", topic, p)
		}
		want[p] = true
	}

	var opts []kgo.Opt
	remaining := map[int32]int64{} // partition → end offset still to reach (-e)
	if o.group == "" {
		offsets, err := resolveStart(cmd.Context(), g, adm, topic, from, starts, ends)
		if err != nil {
			return err
		}
		assign := map[int32]kgo.Offset{}
		for p, at := range offsets {
			if len(want) > 0 && !want[p] {
				continue
			}
			assign[p] = kgo.NewOffset().At(at)
			if at < ends[p] {
				remaining[p] = ends[p]
			}
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign}))
	} else {
		reset := kgo.NewOffset().AtStart()
		switch from.kind {
		case "end":
			reset = kgo.NewOffset().AtEnd()
		case "offset":
			reset = kgo.NewOffset().At(from.offset)
		case "relative":
			reset = kgo.NewOffset().AtEnd().Relative(-from.offset)
		case "time":
			reset = kgo.NewOffset().AfterMilli(from.millis)
		}
		opts = append(opts, kgo.ConsumerGroup(o.group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(reset),
			kgo.AutoCommitMarks(), kgo.BlockRebalanceOnPoll())
	}
	if o.exitAtEnd && len(remaining) == 0 {
		return nil
	}
	cl, _, err := g.client(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if o.group != "" {
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), g.timeout)
			defer cancel()
			if err := cl.CommitMarkedOffsets(cctx); err != nil {
				fmt.Fprintf(g.stderr, "tributary: commit offsets for group %s: %v\n", o.group, err)
			}
			cl.LeaveGroupContext(cctx)
		}()
	}

	w := bufio.NewWriter(g.stdout)
	defer w.Flush()
	printed := 0
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil // interrupted: what was printed stands
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		stop := false
		fetches.EachRecord(func(r *kgo.Record) {
			if stop {
				return
			}
			if err := writeRecord(w, g.output, o.raw, r); err != nil {
				ferr = err
				stop = true
				return
			}
			if o.group != "" {
				cl.MarkCommitRecords(r)
			}
			printed++
			if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
			if o.count > 0 && printed >= o.count || o.exitAtEnd && len(remaining) == 0 {
				stop = true
			}
		})
		if o.group != "" {
			cl.AllowRebalance()
		}
		if ferr != nil {
			return ferr
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if stop {
			return nil
		}
	}
}

// bounds lists a topic's start and end offsets per partition.
func bounds(ctx context.Context, adm *kadm.Client, topic string) (starts, ends map[int32]int64, err error) {
	s, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	e, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	if len(e[topic]) == 0 {
		return nil, nil, fmt.Errorf("topic %q does not exist (tributary topic list shows the topics)", topic)
	}
	starts, ends = map[int32]int64{}, map[int32]int64{}
	for p, o := range s[topic] {
		if o.Err != nil {
			return nil, nil, fmt.Errorf("%s/%d: %w", topic, p, o.Err)
		}
		starts[p] = o.Offset
	}
	for p, o := range e[topic] {
		if o.Err != nil {
			return nil, nil, fmt.Errorf("%s/%d: %w", topic, p, o.Err)
		}
		ends[p] = o.Offset
	}
	return starts, ends, nil
}

// resolveStart turns --from into an exact offset per partition, clamped to
// what the partition holds.
func resolveStart(ctx context.Context, g *globals, adm *kadm.Client, topic string, from startAt, starts, ends map[int32]int64) (map[int32]int64, error) {
	out := map[int32]int64{}
	var byTime kadm.ListedOffsets
	if from.kind == "time" {
		c, cancel := context.WithTimeout(ctx, g.timeout)
		defer cancel()
		var err error
		if byTime, err = adm.ListOffsetsAfterMilli(c, from.millis, topic); err != nil {
			return nil, fmt.Errorf("offsets for time: %w", err)
		}
	}
	for p, end := range ends {
		start := starts[p]
		var at int64
		switch from.kind {
		case "start":
			at = start
		case "end":
			at = end
		case "offset":
			at = from.offset
		case "relative":
			at = end - from.offset
		case "time":
			at = end
			if o, ok := byTime.Lookup(topic, p); ok && o.Err == nil && o.Offset >= 0 {
				at = o.Offset
			}
		}
		out[p] = min(max(at, start), end)
	}
	return out, nil
}

// shownRecord is how consume prints a record.
type shownRecord struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp string            `json:"timestamp"`
	Key       string            `json:"key,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Format    string            `json:"format"`
	Value     any               `json:"value"`
}

func writeRecord(w io.Writer, output string, raw bool, r *kgo.Record) error {
	if raw {
		if _, err := w.Write(r.Value); err != nil {
			return err
		}
		_, err := io.WriteString(w, "\n")
		return err
	}
	s := shownRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano), Key: printableBytes(r.Key)}
	ct := ""
	if len(r.Headers) > 0 {
		s.Headers = map[string]string{}
		for _, h := range r.Headers {
			s.Headers[h.Key] = printableBytes(h.Value)
			if h.Key == "content-type" {
				ct = string(h.Value)
			}
		}
	}
	v := render.Decode(ct, r.Value)
	s.Format, s.Value = v.Format, v.Data
	if output == "yaml" {
		if _, err := io.WriteString(w, "---\n"); err != nil {
			return err
		}
		return writeYAML(w, s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// printableBytes shows keys and header values as text when they are, and
// as base64 otherwise.
func printableBytes(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(b)
}

func sortedPartitions[V any](m map[int32]V) []int32 {
	ps := make([]int32, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}
