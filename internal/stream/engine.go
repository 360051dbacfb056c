package stream

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one input record, as any log (a Kafka topic, an edge partition
// log) can hand it over. Timestamp is in ms since the Unix epoch.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp int64
}

// Output is one record the engine emits. ID identifies it among everything
// the aggregation ever emits to Topic with this Key: the exactly-once layer
// recognises a re-emitted output by (Topic, Key, ID).
type Output struct {
	Topic     string
	Key       []byte
	Value     []byte
	Timestamp int64
	Headers   []Header
	ID        string
}

// HeaderID carries Output.ID on every output record; HeaderReason names why
// a record went to the side topic.
const (
	HeaderID     = "tributary-stream-id"
	HeaderReason = "reason"
)

// Emit receives the engine's outputs, in order.
type Emit func(Output)

// Counters the engine keeps; the runner turns them into metrics.
type Counters struct {
	Records     uint64
	Late        uint64
	Skipped     map[string]uint64 // by reason
	Outputs     uint64
	WindowsOpen int
}

// window is one (group, window) being accumulated.
type window struct {
	group      string
	start, end int64
	count      int64
	fields     []fieldState
	closed     bool // emitted, or merged into another session
}

type groupState struct {
	wins []*window // sorted by start
	// deadband
	dbHas  bool
	dbTime int64
	dbVals []float64
	dbSet  []bool
}

type partState struct {
	next  int64 // next offset to process
	maxTs int64 // math.MinInt64 until the first record
	idle  bool
}

func (p *partState) watermark(lateness int64) int64 {
	if p.maxTs == math.MinInt64 {
		return math.MinInt64
	}
	return p.maxTs - lateness
}

// Engine runs one aggregation. It is deterministic: its outputs depend only
// on the records given to Process (their order within each partition) and on
// the config — except where documented (idle partitions, the "now" bound on
// absurd timestamps). It is not safe for concurrent use.
type Engine struct {
	cfg  *Aggregation
	plan *aggPlan
	fmt  format

	size, advance, gap, lateness int64 // ms
	minTs                        int64
	maxAhead                     int64
	maxTs                        int64 // now + maxAhead, refreshed every 1024 records
	now                          func() time.Time

	parts    map[int32]*partState
	groups   map[string]*groupState
	ends     []int64 // distinct window ends with open windows, ascending
	byEnd    map[int64][]*window
	closedTo int64 // watermark up to which windows are closed; monotone
	open     int

	counters Counters

	// scratch
	key  []byte
	vals []float64
	ok   []bool
}

// New builds an engine for a validated aggregation. now bounds timestamps
// "too far in the future"; nil means time.Now.
func New(cfg *Aggregation, now func() time.Time) (*Engine, error) {
	if now == nil {
		now = time.Now
	}
	e := &Engine{
		cfg:      cfg,
		fmt:      parseFormat(cfg.Format),
		lateness: cfg.Lateness.Milliseconds(),
		minTs:    cfg.MinTimestamp.UnixMilli(),
		maxAhead: cfg.MaxAhead.Milliseconds(),
		now:      now,
		parts:    map[int32]*partState{},
		groups:   map[string]*groupState{},
		byEnd:    map[int64][]*window{},
		closedTo: math.MinInt64,
		vals:     make([]float64, len(cfg.Fields)),
		ok:       make([]bool, len(cfg.Fields)),
		counters: Counters{Skipped: map[string]uint64{}},
	}
	if cfg.Window != nil {
		plan, err := newAggPlan(cfg.Aggregates, cfg.QuantileAccuracy)
		if err != nil {
			return nil, err
		}
		e.plan = plan
		e.size = cfg.Window.Size.Milliseconds()
		e.advance = cfg.Window.Advance.Milliseconds()
		e.gap = cfg.Window.Gap.Milliseconds()
	}
	return e, nil
}

// Assign declares the source's partitions: the watermark is the minimum
// over all of them, so a partition that has not had a record yet holds it
// back (unless marked idle).
func (e *Engine) Assign(partitions []int32) {
	for _, p := range partitions {
		if e.parts[p] == nil {
			e.parts[p] = &partState{maxTs: math.MinInt64}
		}
	}
}

// NextOffsets returns, per partition, the next input offset to process.
func (e *Engine) NextOffsets() map[int32]int64 {
	m := make(map[int32]int64, len(e.parts))
	for p, s := range e.parts {
		m[p] = s.next
	}
	return m
}

// Counters returns a copy of the engine's counters.
func (e *Engine) Counters() Counters {
	c := e.counters
	c.Skipped = make(map[string]uint64, len(e.counters.Skipped))
	for k, v := range e.counters.Skipped {
		c.Skipped[k] = v
	}
	c.WindowsOpen = e.open
	return c
}

// Watermark is the event time (ms) up to which windows are closed.
func (e *Engine) Watermark() int64 { return e.closedTo }

// SetIdle marks a partition idle (it stops holding the watermark back) or
// active again; a record on a partition makes it active. Windows the new
// watermark closes are emitted.
func (e *Engine) SetIdle(partition int32, idle bool, emit Emit) {
	ps := e.parts[partition]
	if ps == nil || ps.idle == idle {
		return
	}
	ps.idle = idle
	e.advanceWatermark(emit)
}

func (e *Engine) skip(r *Record, reason string, emit Emit) {
	e.counters.Skipped[reason]++
	e.side(r, reason, emit)
}

func (e *Engine) side(r *Record, reason string, emit Emit) {
	if e.cfg.SideTopic == "" {
		return
	}
	h := make([]Header, 0, len(r.Headers)+2)
	h = append(h, r.Headers...)
	id := "s/" + strconv.FormatInt(int64(r.Partition), 10) + "/" + strconv.FormatInt(r.Offset, 10)
	h = append(h, Header{Key: HeaderReason, Value: []byte(reason)}, Header{Key: HeaderID, Value: []byte(id)})
	e.counters.Outputs++
	emit(Output{Topic: e.cfg.SideTopic, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp, Headers: h, ID: id})
}

// Process takes one record. Records of a partition must come in offset
// order; a record below the partition's next offset (already processed) is
// ignored. Windows the record's watermark closes are emitted.
func (e *Engine) Process(r *Record, emit Emit) {
	ps := e.parts[r.Partition]
	if ps == nil {
		ps = &partState{maxTs: math.MinInt64}
		e.parts[r.Partition] = ps
	}
	if r.Offset < ps.next {
		return
	}
	ps.next = r.Offset + 1
	ps.idle = false
	e.counters.Records++
	before := ps.maxTs
	e.process(r, ps, emit)
	if ps.maxTs != before { // only a partition's newest event time moves the watermark
		e.advanceWatermark(emit)
	}
}

func (e *Engine) process(r *Record, ps *partState, emit Emit) {
	ts := r.Timestamp
	if e.counters.Records%1024 == 1 { // the clock is read once per 1024 records: it costs more than the rest
		e.maxTs = e.now().UnixMilli() + e.maxAhead
	}
	if ts < e.minTs || ts > e.maxTs {
		e.skip(r, ReasonTimestamp, emit)
		return
	}
	if ts > ps.maxTs {
		ps.maxTs = ts
	}
	var ct []byte
	for i := range r.Headers {
		if r.Headers[i].Key == "content-type" {
			ct = r.Headers[i].Value
			break
		}
	}
	f := formatOf(e.fmt, ct, r.Value)
	any := false
	var firstErr error
	for i := range e.cfg.Fields {
		v, err := extractNumber(f, r.Value, e.cfg.Fields[i].path)
		e.vals[i], e.ok[i] = v, err == nil
		if err != nil {
			e.counters.Skipped[err.Error()]++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		any = true
	}
	if !any {
		e.side(r, firstErr.Error(), emit)
		return
	}
	key, err := e.groupKey(r, f)
	if err != nil {
		e.skip(r, err.Error(), emit)
		return
	}
	if e.cfg.Deadband != nil {
		e.deadband(r, key, emit)
		return
	}
	at := pos{ts: ts, p: r.Partition, off: r.Offset}
	wm := ps.watermark(e.lateness)
	if e.closedTo > wm {
		wm = e.closedTo
	}
	var accepted bool
	if e.cfg.Window.Type == Session {
		accepted = e.addSession(key, at, wm, r, emit)
	} else {
		accepted = e.addWindows(key, at, wm, r, emit)
	}
	if !accepted {
		e.counters.Late++
		e.side(r, ReasonLate, emit)
	}
}

// groupKey builds the group: the record key, then "/" and the group_by
// field or header when one is configured.
func (e *Engine) groupKey(r *Record, f format) ([]byte, error) {
	k := e.key[:0]
	if *e.cfg.GroupBy.Key {
		k = append(k, r.Key...)
	}
	extra := e.cfg.GroupBy.Field != "" || e.cfg.GroupBy.Header != ""
	if extra && *e.cfg.GroupBy.Key {
		k = append(k, '/')
	}
	switch {
	case e.cfg.GroupBy.Field != "":
		var err error
		if k, err = appendText(k, f, r.Value, e.cfg.GroupBy.fieldPath); err != nil {
			e.key = k
			return nil, err
		}
	case e.cfg.GroupBy.Header != "":
		found := false
		for i := range r.Headers {
			if r.Headers[i].Key == e.cfg.GroupBy.Header {
				k = append(k, r.Headers[i].Value...)
				found = true
				break
			}
		}
		if !found {
			e.key = k
			return nil, errMissing
		}
	}
	e.key = k
	return k, nil
}

func (e *Engine) group(key []byte) *groupState {
	g := e.groups[string(key)]
	if g == nil {
		g = &groupState{}
		e.groups[string(key)] = g
	}
	return g
}

func (e *Engine) newWindow(key string, start, end int64) *window {
	w := &window{group: key, start: start, end: end, fields: make([]fieldState, len(e.cfg.Fields))}
	e.index(w)
	e.open++
	return w
}

// index files w under its end.
func (e *Engine) index(w *window) {
	l, ok := e.byEnd[w.end]
	if !ok {
		i := sort.Search(len(e.ends), func(i int) bool { return e.ends[i] >= w.end })
		e.ends = append(e.ends, 0)
		copy(e.ends[i+1:], e.ends[i:])
		e.ends[i] = w.end
	}
	e.byEnd[w.end] = append(l, w)
}

func (e *Engine) accumulate(w *window, at pos) {
	w.count++
	for i := range e.cfg.Fields {
		if e.ok[i] {
			e.plan.add(&w.fields[i], e.vals[i], at)
		}
	}
}

// addWindows adds the record to every tumbling/hopping window holding its
// time whose end is past wm; it reports whether any took it.
func (e *Engine) addWindows(key []byte, at pos, wm int64, r *Record, emit Emit) bool {
	// windows [s, s+size) with s = k*advance and s <= ts < s+size
	last := floorDiv(at.ts, e.advance) * e.advance
	accepted := false
	var g *groupState
	for s := last; s > at.ts-e.size; s -= e.advance {
		end := s + e.size
		if end <= wm {
			break // older windows end earlier still
		}
		if g == nil {
			g = e.group(key)
		}
		w := g.find(s)
		if w == nil {
			w = e.newWindow(string(key), s, end)
			g.insert(w)
		}
		e.accumulate(w, at)
		accepted = true
		if e.cfg.EarlyResults {
			e.emitWindow(w, false, r, emit)
		}
	}
	return accepted
}

func (g *groupState) find(start int64) *window {
	for i := len(g.wins) - 1; i >= 0; i-- {
		if g.wins[i].start == start {
			return g.wins[i]
		}
		if g.wins[i].start < start {
			return nil
		}
	}
	return nil
}

func (g *groupState) insert(w *window) {
	i := sort.Search(len(g.wins), func(i int) bool { return g.wins[i].start > w.start })
	g.wins = append(g.wins, nil)
	copy(g.wins[i+1:], g.wins[i:])
	g.wins[i] = w
}

func (g *groupState) remove(w *window) {
	for i, x := range g.wins {
		if x == w {
			g.wins = append(g.wins[:i], g.wins[i+1:]...)
			return
		}
	}
}

// addSession merges the record's interval [ts, ts+gap) with the group's
// overlapping sessions. A record older than wm is late: it could overlap a
// session already closed.
func (e *Engine) addSession(key []byte, at pos, wm int64, r *Record, emit Emit) bool {
	if at.ts < wm {
		return false
	}
	g := e.group(key)
	start, end := at.ts, at.ts+e.gap
	var target *window
	kept := g.wins[:0]
	var merged []*window
	for _, w := range g.wins {
		if w.start < end && w.end > start {
			merged = append(merged, w)
			continue
		}
		kept = append(kept, w)
	}
	g.wins = kept
	for _, w := range merged {
		if w.start < start {
			start = w.start
		}
		if w.end > end {
			end = w.end
		}
	}
	if len(merged) == 0 {
		target = e.newWindow(string(key), start, end)
	} else {
		target = merged[0]
		for _, w := range merged[1:] {
			target.count += w.count
			for i := range target.fields {
				e.plan.merge(&target.fields[i], &w.fields[i])
			}
			w.closed = true // its index entry is stale now
			e.open--
		}
		target.start = start
		if end != target.end {
			target.end = end
			e.index(target) // the old entry goes stale: closing checks w.end
		}
	}
	g.insert(target)
	e.accumulate(target, at)
	if e.cfg.EarlyResults {
		e.emitWindow(target, false, r, emit)
	}
	return true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// advanceWatermark recomputes the global watermark and closes windows it
// passed, oldest end first, then by start and group.
func (e *Engine) advanceWatermark(emit Emit) {
	wm := int64(math.MaxInt64)
	active := false
	for _, ps := range e.parts {
		if ps.idle {
			continue
		}
		active = true
		if w := ps.watermark(e.lateness); w < wm {
			wm = w
		}
	}
	if !active { // all idle: the slowest of those that have had records
		for _, ps := range e.parts {
			if w := ps.watermark(e.lateness); ps.maxTs != math.MinInt64 && w < wm {
				wm = w
			}
		}
	}
	if wm == math.MaxInt64 || wm <= e.closedTo {
		return
	}
	e.closedTo = wm
	for len(e.ends) > 0 && e.ends[0] <= wm {
		end := e.ends[0]
		e.ends = e.ends[1:]
		list := e.byEnd[end]
		delete(e.byEnd, end)
		closing := list[:0]
		for _, w := range list {
			if !w.closed && w.end == end {
				closing = append(closing, w)
			}
		}
		sortWindows(closing)
		for _, w := range closing {
			w.closed = true
			e.open--
			g := e.groups[w.group]
			g.remove(w)
			if len(g.wins) == 0 && !g.dbHas {
				delete(e.groups, w.group)
			}
			e.emitWindow(w, true, nil, emit)
		}
	}
}

// emitWindow emits a window result; early results name the record that
// caused them in their ID.
func (e *Engine) emitWindow(w *window, final bool, r *Record, emit Emit) {
	id := "f/" + strconv.FormatInt(w.start, 10) + "/" + strconv.FormatInt(w.end, 10)
	if !final {
		id = "e/" + strconv.FormatInt(w.start, 10) + "/" + strconv.FormatInt(w.end, 10) + "/" +
			strconv.FormatInt(int64(r.Partition), 10) + "/" + strconv.FormatInt(r.Offset, 10)
	}
	var value []byte
	if e.cfg.OutputFormat == "cbor" {
		var err error
		if value, err = e.windowCBOR(w, final); err != nil {
			value = []byte(fmt.Sprintf(`{"error":%q}`, err.Error())) // maps of floats always encode
		}
	} else {
		value = e.windowJSON(make([]byte, 0, 64+len(w.group)+48*len(w.fields)), w, final)
	}
	e.counters.Outputs++
	emit(Output{
		Topic:     e.cfg.Output,
		Key:       []byte(w.group),
		Value:     value,
		Timestamp: w.end,
		Headers:   []Header{{Key: HeaderID, Value: []byte(id)}},
		ID:        id,
	})
}

// deadband emits the record's fields when one moved by more than delta
// since the group's last emitted reading, or heartbeat has passed.
func (e *Engine) deadband(r *Record, key []byte, emit Emit) {
	g := e.group(key)
	n := len(e.cfg.Fields)
	if g.dbVals == nil {
		g.dbVals, g.dbSet = make([]float64, n), make([]bool, n)
	}
	d := e.cfg.Deadband
	fire := !g.dbHas
	if !fire && d.Heartbeat > 0 && r.Timestamp-g.dbTime >= d.Heartbeat.Milliseconds() {
		fire = true
	}
	for i := 0; i < n && !fire; i++ {
		if e.ok[i] && (!g.dbSet[i] || math.Abs(e.vals[i]-g.dbVals[i]) > d.Delta) {
			fire = true
		}
	}
	if !fire {
		return
	}
	g.dbHas, g.dbTime = true, r.Timestamp
	for i := 0; i < n; i++ {
		if e.ok[i] {
			g.dbVals[i], g.dbSet[i] = e.vals[i], true
		}
	}
	value, err := e.deadbandValue(string(key), r.Timestamp, e.vals, e.ok)
	if err != nil {
		e.skip(r, ReasonMalformed, emit)
		return
	}
	id := "d/" + strconv.FormatInt(int64(r.Partition), 10) + "/" + strconv.FormatInt(r.Offset, 10)
	e.counters.Outputs++
	emit(Output{
		Topic:     e.cfg.Output,
		Key:       append([]byte(nil), key...),
		Value:     value,
		Timestamp: r.Timestamp,
		Headers:   []Header{{Key: HeaderID, Value: []byte(id)}},
		ID:        id,
	})
}
