package rules

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tributary-io/tributary/edge/payload"
	"github.com/tributary-io/tributary/edge/topicmap"
)

// Config is one ingest rule as written in the edge's config file.
type Config struct {
	// Name labels the rule in metrics and logs (default "rule-<n>").
	Name string `yaml:"name"`
	// Match is the topic filter with named captures.
	Match string `yaml:"match"`
	// Stream is the stream template, e.g. "tasmota" or "plant.{group}";
	// '/' inside a multi-level capture becomes '.'.
	Stream string `yaml:"stream"`
	// Key is the record key template (default "{device}").
	Key string `yaml:"key"`
	// Headers are extra record headers, values templates.
	Headers map[string]string `yaml:"headers"`
	// Format is how payloads are read (default auto).
	Format string `yaml:"format"`
	// Time is where the device time comes from (default: the payload's
	// own reading/SenML time, else the receive time).
	Time TimeConfig `yaml:"time"`
	// Seq is a JSON pointer to a sequence number; with one and a device
	// time, re-sends are recognised by (seq, time) as for readings.
	Seq string `yaml:"seq"`
	// DeadLetter is the dead-letter stream template (default the stream
	// followed by ingest.dead_letter_suffix).
	DeadLetter string `yaml:"dead_letter"`
	// Schema is a JSON Schema (draft 2020-12) document, inline, applied to
	// JSON and CBOR payloads; SchemaFile reads it from a file instead.
	Schema     string `yaml:"schema"`
	SchemaFile string `yaml:"schema_file"`
	// Decode (sparkplug-b) stores a JSON rendering of the decoded metrics
	// as the value; see edge/README.md.
	Decode bool `yaml:"decode"`
	// Limits bound generic JSON and CBOR payloads.
	Limits payload.Limits `yaml:"limits"`
}

// TimeConfig is a rule's device-time source and window.
type TimeConfig struct {
	// Field is a JSON pointer (CBOR: key path) to the time; empty uses the
	// reading's or SenML pack's own time, else the receive time.
	Field string `yaml:"field"`
	// Unit is auto, ms, s, rfc3339 or local (zone-less ISO time).
	Unit string `yaml:"unit"`
	// Zone is the IANA zone of local times (Tasmota sends none).
	Zone string `yaml:"zone"`
	// Receive ignores any time in the payload and uses the receive time.
	Receive bool `yaml:"receive"`
	// MaxAge and MaxFuture bound device times against the receive time
	// (0: no bound); OutOfWindow says what happens outside: receive
	// (default: use the receive time) or clamp (move to the nearest bound).
	// Either way the device's time is kept in the device-time header.
	MaxAge      time.Duration `yaml:"max_age"`
	MaxFuture   time.Duration `yaml:"max_future"`
	OutOfWindow string        `yaml:"out_of_window"`
}

// Rule is a compiled rule.
type Rule struct {
	Name   string
	Format payload.Format
	// Time is the device time source; HasTimeField says whether one is set.
	Time         payload.TimeSpec
	HasTimeField bool
	ReceiveTime  bool
	MaxAge       time.Duration
	MaxFuture    time.Duration
	Clamp        bool
	// Seq is the sequence field, if any.
	Seq    payload.Path
	HasSeq bool
	Decode bool
	Limits payload.Limits
	// Schema validates JSON and CBOR payloads (nil: none).
	Schema Validator
	// Legacy marks the default rule that reproduces topic_map: its device
	// is the level after the stream levels.
	Legacy bool

	filter     *filter
	stream     template
	key        template
	deadLetter template
	hasDLQ     bool
	headers    []header
	deviceCap  int // capture index of {device}, -1 if none
}

type header struct {
	name string
	val  template
}

// Validator checks a decoded JSON value (see schema.go).
type Validator interface {
	Validate(v any) error
}

// SchemaCompiler compiles a rule's schema; ingest passes the jsonschema
// one, tests may pass another.
type SchemaCompiler func(name, doc string) (Validator, error)

// Set is the ordered rule list; the first match wins.
type Set struct {
	rules []*Rule
}

// Match finds the first rule whose filter matches topic.
func (s *Set) Match(topic string, c *Captures) *Rule {
	for _, r := range s.rules {
		if r.filter.match(topic, c) {
			return r
		}
	}
	return nil
}

// Rules lists the compiled rules in order.
func (s *Set) Rules() []*Rule { return s.rules }

// Stream renders the stream name of a match.
func (r *Rule) Stream(c *Captures) string { return r.stream.render(c, '.') }

// MayWriteStream reports whether the rule's stream template can render
// name (start-up scans use it to skip streams the rule never writes).
func (r *Rule) MayWriteStream(name string) bool { return r.stream.mayRender(name) }

// Key renders the record key of a match.
func (r *Rule) Key(c *Captures) string { return r.key.render(c, 0) }

// DeadLetter renders the dead-letter stream, or "" for the default
// (stream + suffix).
func (r *Rule) DeadLetter(c *Captures) string {
	if !r.hasDLQ {
		return ""
	}
	return r.deadLetter.render(c, '.')
}

// Device is the {device} capture ("" if the filter has none).
func (r *Rule) Device(c *Captures) string {
	if r.deviceCap < 0 {
		return ""
	}
	return c.Get(r.deviceCap)
}

// Capture returns a named capture of a match ("" if absent).
func (r *Rule) Capture(c *Captures, name string) string {
	if i := r.filter.capture(name); i >= 0 {
		return c.Get(i)
	}
	return ""
}

// Headers calls fn for each extra header of a match.
func (r *Rule) Headers(c *Captures, fn func(k, v string)) {
	for _, h := range r.headers {
		fn(h.name, h.val.render(c, 0))
	}
}

// HasHeaders says whether the rule adds headers.
func (r *Rule) HasHeaders() bool { return len(r.headers) > 0 }

// HeaderCount is how many headers the rule adds.
func (r *Rule) HeaderCount() int { return len(r.headers) }

// Compile checks and compiles rules, then appends the default rule that
// reproduces topic_map's "<stream levels>/<device>/..." mapping (format
// auto). Every error names the rule and the field.
func Compile(cfgs []Config, streamLevels int, schema SchemaCompiler) (*Set, error) {
	s := &Set{}
	names := map[string]bool{}
	for i, c := range cfgs {
		if c.Name == "" {
			c.Name = fmt.Sprintf("rule-%d", i+1)
		}
		if names[c.Name] {
			return nil, fmt.Errorf("rule %q (#%d): name: used twice", c.Name, i+1)
		}
		names[c.Name] = true
		r, err := compile(c, schema)
		if err != nil {
			return nil, fmt.Errorf("rule %q (#%d): %w", c.Name, i+1, err)
		}
		s.rules = append(s.rules, r)
	}
	d, err := DefaultRule(streamLevels)
	if err != nil {
		return nil, err
	}
	s.rules = append(s.rules, d)
	return s, nil
}

// DefaultRule is topic_map's mapping as a rule: stream levels, then the
// device; anything after is free.
func DefaultRule(streamLevels int) (*Rule, error) {
	if streamLevels <= 0 {
		streamLevels = 1
	}
	var match, stream []string
	for i := 1; i <= streamLevels; i++ {
		n := fmt.Sprintf("s%d", i)
		match = append(match, "{"+n+"}")
		stream = append(stream, "{"+n+"}")
	}
	r, err := compile(Config{
		Name:   "default",
		Match:  strings.Join(match, "/") + "/{device}/#",
		Stream: strings.Join(stream, "."),
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("default rule: %w", err)
	}
	r.Legacy = true
	return r, nil
}

func compile(c Config, schema SchemaCompiler) (*Rule, error) {
	r := &Rule{Name: c.Name, Decode: c.Decode}
	var err error
	if c.Match == "" {
		return nil, errors.New("match: missing")
	}
	if r.filter, err = parseFilter(c.Match); err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	r.deviceCap = r.filter.capture("device")
	if c.Stream == "" {
		return nil, errors.New("stream: missing")
	}
	if r.stream, err = parseTemplate(c.Stream, r.filter); err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	if r.stream.constant() {
		if err := topicmap.ValidStream(c.Stream); err != nil {
			return nil, fmt.Errorf("stream: %w", err)
		}
	}
	key := c.Key
	if key == "" {
		if r.deviceCap < 0 {
			return nil, fmt.Errorf("key: missing, and the filter has no {device} capture to default to")
		}
		key = "{device}"
	}
	if r.key, err = parseTemplate(key, r.filter); err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if c.DeadLetter != "" {
		if r.deadLetter, err = parseTemplate(c.DeadLetter, r.filter); err != nil {
			return nil, fmt.Errorf("dead_letter: %w", err)
		}
		if r.deadLetter.constant() {
			if err := topicmap.ValidStream(c.DeadLetter); err != nil {
				return nil, fmt.Errorf("dead_letter: %w", err)
			}
		}
		r.hasDLQ = true
	}
	hk := make([]string, 0, len(c.Headers))
	for k := range c.Headers {
		hk = append(hk, k)
	}
	sort.Strings(hk)
	for _, k := range hk {
		if k == "" {
			return nil, errors.New("headers: empty header name")
		}
		t, err := parseTemplate(c.Headers[k], r.filter)
		if err != nil {
			return nil, fmt.Errorf("headers.%s: %w", k, err)
		}
		r.headers = append(r.headers, header{name: k, val: t})
	}
	if r.Format, err = payload.ParseFormat(c.Format); err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	if r.Time, err = payload.NewTimeSpec(c.Time.Field, c.Time.Unit, c.Time.Zone); err != nil {
		return nil, fmt.Errorf("time: %w", err)
	}
	r.HasTimeField = c.Time.Field != ""
	r.ReceiveTime = c.Time.Receive
	if r.ReceiveTime && r.HasTimeField {
		return nil, errors.New("time: receive and field are exclusive")
	}
	if c.Time.MaxAge < 0 || c.Time.MaxFuture < 0 {
		return nil, errors.New("time: max_age and max_future must not be negative")
	}
	r.MaxAge, r.MaxFuture = c.Time.MaxAge, c.Time.MaxFuture
	switch c.Time.OutOfWindow {
	case "", "receive":
	case "clamp":
		r.Clamp = true
	default:
		return nil, fmt.Errorf("time.out_of_window %q: want receive or clamp", c.Time.OutOfWindow)
	}
	if c.Seq != "" {
		if r.Seq, err = payload.ParsePath(c.Seq); err != nil {
			return nil, fmt.Errorf("seq: %w", err)
		}
		r.HasSeq = true
	}
	if (r.HasTimeField || r.HasSeq) && !fieldFormat(r.Format) {
		return nil, fmt.Errorf("time.field/seq: format %s has no fields (want json, cbor or auto)", r.Format)
	}
	if r.Limits, err = c.Limits.Compile(); err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	if c.Schema != "" || c.SchemaFile != "" {
		if c.Schema != "" && c.SchemaFile != "" {
			return nil, errors.New("schema and schema_file are exclusive")
		}
		if !fieldFormat(r.Format) {
			return nil, fmt.Errorf("schema: format %s is not JSON or CBOR", r.Format)
		}
		if schema == nil {
			return nil, errors.New("schema: no schema compiler")
		}
		doc, field := c.Schema, "schema"
		if c.SchemaFile != "" {
			doc, field = "@"+c.SchemaFile, "schema_file"
		}
		if r.Schema, err = schema(c.Name, doc); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
	}
	if c.Decode && r.Format != payload.FormatSparkplug {
		return nil, errors.New("decode: only for format sparkplug-b")
	}
	return r, nil
}

func fieldFormat(f payload.Format) bool {
	switch f {
	case payload.FormatAuto, payload.FormatJSON, payload.FormatCBOR:
		return true
	}
	return false
}
