package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Aggregation is one continuous aggregation: a source topic, the fields to
// read from each record, how records are grouped, and either a window (with
// aggregates) or a deadband (report by exception).
type Aggregation struct {
	// Name identifies the aggregation: the default output topic is
	// <source>.<name>, and checkpoints are kept under it.
	Name string `yaml:"name"`
	// Source is the input topic.
	Source string `yaml:"source"`
	// Output is the derived topic; default <source>.<name>.
	Output string `yaml:"output"`
	// SideTopic, if set, receives late records and skipped (bad) records
	// unchanged, with a "reason" header.
	SideTopic string `yaml:"side_topic"`
	// Format of the input payloads: auto (content-type header, else sniff),
	// json, cbor, senml+json, senml+cbor.
	Format string `yaml:"format"`
	// OutputFormat is json (default) or cbor.
	OutputFormat string `yaml:"output_format"`
	// Fields to aggregate.
	Fields []Field `yaml:"fields"`
	// GroupBy: the record key (default), plus optionally a payload field or a
	// header.
	GroupBy GroupBy `yaml:"group_by"`
	// Window and Aggregates, or Deadband: exactly one of the two.
	Window     *Window   `yaml:"window"`
	Aggregates []string  `yaml:"aggregates"`
	Deadband   *Deadband `yaml:"deadband"`
	// Lateness is how far behind the partition's newest event time a record
	// may be and still be counted: watermark = max event time - lateness.
	Lateness time.Duration `yaml:"lateness"`
	// IdleTimeout: a caught-up partition that has received nothing for this
	// long stops holding the watermark back. 0 disables (the watermark then
	// waits for every partition, which keeps outputs fully deterministic).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// EarlyResults emits a partial result (final:false) on every update.
	EarlyResults bool `yaml:"early_results"`
	// QuantileAccuracy is DDSketch's relative accuracy (default 0.01).
	QuantileAccuracy float64 `yaml:"quantile_accuracy"`
	// Timestamps outside [MinTimestamp, now+MaxAhead] are skipped as absurd.
	MinTimestamp time.Time     `yaml:"min_timestamp"`
	MaxAhead     time.Duration `yaml:"max_ahead"`
}

// Field is one value to aggregate: a JSON pointer ("/env/temp") or dotted
// path ("env.temp"); in SenML packs, the resolved record name (bn+n).
type Field struct {
	Name string `yaml:"name"`
	Path string `yaml:"path"`

	path Path
}

// GroupBy adds a field or a header to the record key.
type GroupBy struct {
	// Key: group by record key; default true.
	Key    *bool  `yaml:"key"`
	Field  string `yaml:"field"`
	Header string `yaml:"header"`

	fieldPath Path
}

// Window kinds.
const (
	Tumbling = "tumbling"
	Hopping  = "hopping"
	Session  = "session"
)

// Window describes the windows records fall into.
type Window struct {
	Type    string        `yaml:"type"`
	Size    time.Duration `yaml:"size"`
	Advance time.Duration `yaml:"advance"`
	Gap     time.Duration `yaml:"gap"`
}

// Deadband emits a record's fields only when one moved by more than Delta
// since the last emitted record of its group, or when Heartbeat of event time
// has passed since then.
type Deadband struct {
	Delta     float64       `yaml:"delta"`
	Heartbeat time.Duration `yaml:"heartbeat"`
}

// aggregate kinds, in the order they appear in an output.
type aggKind uint8

const (
	aggCount aggKind = iota
	aggSum
	aggMin
	aggMax
	aggMean
	aggFirst
	aggLast
	aggStddev
	aggQuantile
)

var aggNames = map[string]aggKind{
	"count": aggCount, "sum": aggSum, "min": aggMin, "max": aggMax, "mean": aggMean,
	"first": aggFirst, "last": aggLast, "stddev": aggStddev,
}

// aggSpec is a parsed aggregate: its output name, kind and, for quantiles, q.
type aggSpec struct {
	name string
	kind aggKind
	q    float64
}

var quantileName = regexp.MustCompile(`^p([0-9]{1,2})(\.[0-9]+)?$|^p100$`)

func parseAggregate(s string) (aggSpec, error) {
	if k, ok := aggNames[s]; ok {
		return aggSpec{name: s, kind: k}, nil
	}
	if quantileName.MatchString(s) {
		q, err := strconv.ParseFloat(s[1:], 64)
		if err == nil && q >= 0 && q <= 100 {
			return aggSpec{name: s, kind: aggQuantile, q: q / 100}, nil
		}
	}
	return aggSpec{}, fmt.Errorf("unknown aggregate %q (count, sum, min, max, mean, first, last, stddev or a quantile such as p50, p99, p99.9)", s)
}

// Defaults applied by Validate.
const (
	DefaultQuantileAccuracy = 0.01
	DefaultMaxAhead         = 24 * time.Hour
)

// DefaultMinTimestamp is the earliest event time accepted by default.
var DefaultMinTimestamp = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Validate fills defaults and checks the aggregation; errors name the field
// (prefix is prepended, e.g. "aggregations[0]").
func (a *Aggregation) Validate(prefix string) error {
	f := func(field, format string, args ...any) error {
		return fmt.Errorf("%s.%s: %s", prefix, field, fmt.Sprintf(format, args...))
	}
	if a.Name == "" || !namePattern.MatchString(a.Name) {
		return f("name", "%q must be non-empty letters, digits, '.', '_' or '-'", a.Name)
	}
	if a.Source == "" || !namePattern.MatchString(a.Source) {
		return f("source", "%q is not a topic name", a.Source)
	}
	if a.Output == "" {
		a.Output = a.Source + "." + a.Name
	}
	if !namePattern.MatchString(a.Output) || a.Output == a.Source {
		return f("output", "%q is not a topic name distinct from the source", a.Output)
	}
	if a.SideTopic != "" && (!namePattern.MatchString(a.SideTopic) || a.SideTopic == a.Source || a.SideTopic == a.Output) {
		return f("side_topic", "%q is not a topic name distinct from source and output", a.SideTopic)
	}
	switch a.Format {
	case "":
		a.Format = "auto"
	case "auto", "json", "cbor", "senml+json", "senml+cbor":
	default:
		return f("format", "%q is not auto, json, cbor, senml+json or senml+cbor", a.Format)
	}
	switch a.OutputFormat {
	case "":
		a.OutputFormat = "json"
	case "json", "cbor":
	default:
		return f("output_format", "%q is not json or cbor", a.OutputFormat)
	}
	if len(a.Fields) == 0 {
		return f("fields", "at least one field is needed")
	}
	seen := map[string]bool{}
	for i := range a.Fields {
		fl := &a.Fields[i]
		if fl.Path == "" && fl.Name == "" {
			return f(fmt.Sprintf("fields[%d].path", i), "empty")
		}
		if fl.Path == "" {
			fl.Path = fl.Name
		}
		p, err := ParsePath(fl.Path)
		if err != nil {
			return f(fmt.Sprintf("fields[%d].path", i), "%v", err)
		}
		fl.path = p
		if fl.Name == "" {
			fl.Name = p.String()
		}
		if reservedOutputKeys[fl.Name] || seen[fl.Name] {
			return f(fmt.Sprintf("fields[%d].name", i), "%q is reserved or used twice", fl.Name)
		}
		seen[fl.Name] = true
	}
	if a.GroupBy.Field != "" && a.GroupBy.Header != "" {
		return f("group_by", "field and header are exclusive")
	}
	if a.GroupBy.Field != "" {
		p, err := ParsePath(a.GroupBy.Field)
		if err != nil {
			return f("group_by.field", "%v", err)
		}
		a.GroupBy.fieldPath = p
	}
	if a.GroupBy.Key == nil {
		t := true
		a.GroupBy.Key = &t
	}
	if a.Lateness < 0 {
		return f("lateness", "negative")
	}
	if a.IdleTimeout < 0 {
		return f("idle_timeout", "negative")
	}
	if a.QuantileAccuracy == 0 {
		a.QuantileAccuracy = DefaultQuantileAccuracy
	}
	if !(a.QuantileAccuracy > 0 && a.QuantileAccuracy < 1) {
		return f("quantile_accuracy", "%v is not in (0, 1)", a.QuantileAccuracy)
	}
	if a.MinTimestamp.IsZero() {
		a.MinTimestamp = DefaultMinTimestamp
	}
	if a.MaxAhead == 0 {
		a.MaxAhead = DefaultMaxAhead
	}
	if a.MaxAhead < 0 {
		return f("max_ahead", "negative")
	}
	switch {
	case a.Window == nil && a.Deadband == nil:
		return f("window", "a window or a deadband is needed")
	case a.Window != nil && a.Deadband != nil:
		return f("deadband", "a window and a deadband are exclusive")
	case a.Deadband != nil:
		if len(a.Aggregates) > 0 {
			return f("aggregates", "a deadband emits readings, not aggregates")
		}
		if a.EarlyResults {
			return f("early_results", "a deadband has no windows")
		}
		d := a.Deadband
		if !(d.Delta >= 0) || math.IsInf(d.Delta, 0) {
			return f("deadband.delta", "%v is not a finite number >= 0", d.Delta)
		}
		if d.Heartbeat < 0 {
			return f("deadband.heartbeat", "negative")
		}
		return nil
	}
	w := a.Window
	switch w.Type {
	case Tumbling:
		if w.Advance != 0 && w.Advance != w.Size {
			return f("window.advance", "a tumbling window advances by its size")
		}
		w.Advance = w.Size
		if w.Gap != 0 {
			return f("window.gap", "only session windows have a gap")
		}
	case Hopping:
		if w.Advance <= 0 {
			return f("window.advance", "must be > 0 for a hopping window")
		}
		if w.Advance > w.Size {
			return f("window.advance", "%v exceeds the window size %v", w.Advance, w.Size)
		}
		if w.Size/w.Advance > 1000 {
			return f("window.advance", "%v puts a record into more than 1000 windows of %v", w.Advance, w.Size)
		}
		if w.Gap != 0 {
			return f("window.gap", "only session windows have a gap")
		}
	case Session:
		if w.Gap < time.Millisecond {
			return f("window.gap", "must be >= 1ms for a session window")
		}
		if w.Size != 0 || w.Advance != 0 {
			return f("window.size", "a session window has a gap, not a size or advance")
		}
	default:
		return f("window.type", "%q is not tumbling, hopping or session", w.Type)
	}
	if w.Type != Session && (w.Size < time.Millisecond || w.Size%time.Millisecond != 0 || w.Advance%time.Millisecond != 0) {
		return f("window.size", "size and advance must be whole milliseconds >= 1ms")
	}
	if len(a.Aggregates) == 0 {
		return f("aggregates", "at least one aggregate is needed")
	}
	names := map[string]bool{}
	for i, s := range a.Aggregates {
		if _, err := parseAggregate(s); err != nil {
			return f(fmt.Sprintf("aggregates[%d]", i), "%v", err)
		}
		if names[s] {
			return f(fmt.Sprintf("aggregates[%d]", i), "%q listed twice", s)
		}
		names[s] = true
	}
	return nil
}

// reservedOutputKeys are the top-level keys of an output value.
var reservedOutputKeys = map[string]bool{
	"group": true, "window_start": true, "window_end": true, "count": true, "final": true, "time": true,
}

// Config is the tributary-stream configuration file.
type Config struct {
	// Brokers of the Kafka cluster (Tributary core or any Kafka).
	Brokers []string `yaml:"brokers"`
	// DataDir holds one bbolt checkpoint file per aggregation.
	DataDir string `yaml:"data_dir"`
	// HTTPAddr serves /metrics and /healthz.
	HTTPAddr string `yaml:"http_addr"`
	// CheckpointInterval: how often state and offsets are saved (and outputs
	// flushed before that).
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	Aggregations       []Aggregation `yaml:"aggregations"`
}

// DefaultConfig is what tributary-stream runs with before a file or flags.
func DefaultConfig() Config {
	return Config{
		Brokers:            []string{"127.0.0.1:9092"},
		DataDir:            "./data/stream",
		HTTPAddr:           "127.0.0.1:9646",
		CheckpointInterval: time.Second,
	}
}

// ParseConfig reads YAML over the defaults; unknown keys are errors.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	return cfg, nil
}

// Validate checks the whole config, filling defaults.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("brokers: at least one broker address is needed")
	}
	for i, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			return fmt.Errorf("brokers[%d]: %q is not host:port", i, b)
		}
	}
	if c.DataDir == "" {
		return errors.New("data_dir: empty")
	}
	if c.CheckpointInterval < 10*time.Millisecond {
		return fmt.Errorf("checkpoint_interval: %v is below 10ms", c.CheckpointInterval)
	}
	if len(c.Aggregations) == 0 {
		return errors.New("aggregations: none configured")
	}
	return ValidateAggregations(c.Aggregations)
}

// ValidateAggregations checks a list of aggregations as one config's
// "aggregations:" section, filling defaults: each one (Validate), names
// used once, no topic written by two, no source that is another's output.
// Errors name the field, e.g. "aggregations[1].window.advance: ...".
func ValidateAggregations(aggs []Aggregation) error {
	names := map[string]bool{}
	outputs := map[string]bool{}
	for i := range aggs {
		a := &aggs[i]
		if err := a.Validate(fmt.Sprintf("aggregations[%d]", i)); err != nil {
			return err
		}
		if names[a.Name] {
			return fmt.Errorf("aggregations[%d].name: %q used twice", i, a.Name)
		}
		names[a.Name] = true
		for _, t := range []string{a.Output, a.SideTopic} {
			if t == "" {
				continue
			}
			if outputs[t] {
				return fmt.Errorf("aggregations[%d].output: topic %q is written by another aggregation", i, t)
			}
			outputs[t] = true
		}
	}
	for i, a := range aggs {
		if outputs[a.Source] {
			return fmt.Errorf("aggregations[%d].source: %q is another aggregation's output", i, a.Source)
		}
	}
	return nil
}
