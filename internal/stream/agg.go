package stream

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/fxamacker/cbor/v2"
)

// pos orders records with equal event times: (partition, offset) is unique
// and does not depend on how partitions were interleaved.
type pos struct {
	ts  int64
	p   int32
	off int64
}

func (a pos) less(b pos) bool {
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	if a.p != b.p {
		return a.p < b.p
	}
	return a.off < b.off
}

// fieldState accumulates one field in one window.
type fieldState struct {
	n        int64
	sum      float64
	min, max float64
	firstAt  pos
	first    float64
	lastAt   pos
	last     float64
	mean, m2 float64 // Welford, for stddev
	sketch   *ddsketch.DDSketch
}

// aggPlan is what an aggregation computes, shared by all its windows.
type aggPlan struct {
	specs    []aggSpec
	stddev   bool
	quantile bool
	mapping  mapping.IndexMapping
}

func newAggPlan(names []string, accuracy float64) (*aggPlan, error) {
	p := &aggPlan{}
	for _, n := range names {
		s, err := parseAggregate(n)
		if err != nil {
			return nil, err
		}
		p.specs = append(p.specs, s)
		switch s.kind {
		case aggStddev:
			p.stddev = true
		case aggQuantile:
			p.quantile = true
		}
	}
	if p.quantile {
		m, err := mapping.NewLogarithmicMapping(accuracy)
		if err != nil {
			return nil, fmt.Errorf("quantile_accuracy %v: %w", accuracy, err)
		}
		p.mapping = m
	}
	return p, nil
}

func (p *aggPlan) add(f *fieldState, v float64, at pos) {
	if f.n == 0 {
		f.min, f.max, f.first, f.last, f.firstAt, f.lastAt = v, v, v, v, at, at
	} else {
		if v < f.min {
			f.min = v
		}
		if v > f.max {
			f.max = v
		}
		if at.less(f.firstAt) {
			f.first, f.firstAt = v, at
		}
		if f.lastAt.less(at) {
			f.last, f.lastAt = v, at
		}
	}
	f.n++
	f.sum += v
	if p.stddev {
		d := v - f.mean
		f.mean += d / float64(f.n)
		f.m2 += d * (v - f.mean)
	}
	if p.quantile {
		if f.sketch == nil {
			f.sketch = ddsketch.NewDDSketch(p.mapping, store.NewDenseStore(), store.NewDenseStore())
		}
		_ = f.sketch.Add(v) // errors only on values the mapping cannot index (±huge), which stay out of the quantiles
	}
}

// merge folds o into f (session windows joined by a record between them).
func (p *aggPlan) merge(f, o *fieldState) {
	if o.n == 0 {
		return
	}
	if f.n == 0 {
		*f = *o
		return
	}
	if o.min < f.min {
		f.min = o.min
	}
	if o.max > f.max {
		f.max = o.max
	}
	if o.firstAt.less(f.firstAt) {
		f.first, f.firstAt = o.first, o.firstAt
	}
	if f.lastAt.less(o.lastAt) {
		f.last, f.lastAt = o.last, o.lastAt
	}
	n := f.n + o.n
	if p.stddev {
		d := o.mean - f.mean
		f.mean += d * float64(o.n) / float64(n)
		f.m2 += o.m2 + d*d*float64(f.n)*float64(o.n)/float64(n)
	}
	f.n = n
	f.sum += o.sum
	if p.quantile && o.sketch != nil {
		if f.sketch == nil {
			f.sketch = o.sketch
		} else {
			_ = f.sketch.MergeWith(o.sketch)
		}
	}
}

// value computes one aggregate; ok is false when there is nothing to say
// (no values, or a quantile the sketch cannot answer).
func (f *fieldState) value(s aggSpec) (float64, bool) {
	if s.kind == aggCount {
		return float64(f.n), true
	}
	if f.n == 0 {
		return 0, false
	}
	switch s.kind {
	case aggSum:
		return f.sum, true
	case aggMin:
		return f.min, true
	case aggMax:
		return f.max, true
	case aggMean:
		return f.sum / float64(f.n), true
	case aggFirst:
		return f.first, true
	case aggLast:
		return f.last, true
	case aggStddev:
		return math.Sqrt(f.m2 / float64(f.n)), true
	case aggQuantile:
		if f.sketch == nil || f.sketch.IsEmpty() {
			return 0, false
		}
		v, err := f.sketch.GetValueAtQuantile(s.q)
		return v, err == nil
	}
	return 0, false
}

// --- output encoding ---

func appendJSONFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func appendJSONString(b []byte, s string) []byte {
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			simple = false
			break
		}
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	enc, _ := json.Marshal(s) // a string always marshals
	return append(b, enc...)
}

// windowJSON encodes a window result:
// {"group":..,"window_start":ms,"window_end":ms,"count":n,"final":bool,"<field>":{"<agg>":v,..},..}
func (e *Engine) windowJSON(b []byte, w *window, final bool) []byte {
	b = append(b, `{"group":`...)
	b = appendJSONString(b, w.group)
	b = append(b, `,"window_start":`...)
	b = strconv.AppendInt(b, w.start, 10)
	b = append(b, `,"window_end":`...)
	b = strconv.AppendInt(b, w.end, 10)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, w.count, 10)
	b = append(b, `,"final":`...)
	b = strconv.AppendBool(b, final)
	for i := range e.cfg.Fields {
		b = append(b, ',')
		b = appendJSONString(b, e.cfg.Fields[i].Name)
		b = append(b, ":{"...)
		f := &w.fields[i]
		first := true
		for _, s := range e.plan.specs {
			v, ok := f.value(s)
			if !ok {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '"')
			b = append(b, s.name...)
			b = append(b, `":`...)
			b = appendJSONFloat(b, v)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

var cborEnc = func() cbor.EncMode {
	em, err := cbor.EncOptions{Sort: cbor.SortCoreDeterministic, ShortestFloat: cbor.ShortestFloat16, NaNConvert: cbor.NaNConvertQuiet, InfConvert: cbor.InfConvertFloat16}.EncMode()
	if err != nil {
		panic(err) // static options
	}
	return em
}()

// windowCBOR encodes the same object as windowJSON in deterministic CBOR.
func (e *Engine) windowCBOR(w *window, final bool) ([]byte, error) {
	m := map[string]any{"group": w.group, "window_start": w.start, "window_end": w.end, "count": w.count, "final": final}
	for i := range e.cfg.Fields {
		fm := map[string]any{}
		for _, s := range e.plan.specs {
			if v, ok := w.fields[i].value(s); ok {
				fm[s.name] = v
			}
		}
		m[e.cfg.Fields[i].Name] = fm
	}
	return cborEnc.Marshal(m)
}

// deadbandValue encodes {"group":..,"time":ms,"<field>":v,..}.
func (e *Engine) deadbandValue(group string, ts int64, vals []float64, ok []bool) ([]byte, error) {
	if e.cfg.OutputFormat == "cbor" {
		m := map[string]any{"group": group, "time": ts}
		for i, f := range e.cfg.Fields {
			if ok[i] {
				m[f.Name] = vals[i]
			}
		}
		return cborEnc.Marshal(m)
	}
	b := append([]byte(nil), `{"group":`...)
	b = appendJSONString(b, group)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, ts, 10)
	for i, f := range e.cfg.Fields {
		if !ok[i] {
			continue
		}
		b = append(b, ',')
		b = appendJSONString(b, f.Name)
		b = append(b, ':')
		b = appendJSONFloat(b, vals[i])
	}
	return append(b, '}'), nil
}

func sortWindows(ws []*window) {
	sort.Slice(ws, func(i, j int) bool {
		if ws[i].end != ws[j].end {
			return ws[i].end < ws[j].end
		}
		if ws[i].start != ws[j].start {
			return ws[i].start < ws[j].start
		}
		return ws[i].group < ws[j].group
	})
}
