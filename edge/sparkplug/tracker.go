package sparkplug

import (
	"container/list"
	"strconv"
	"strings"
	"sync"
)

// TrackerLimits bound a Tracker's memory.
type TrackerLimits struct {
	// MaxNodes is how many edge nodes are remembered; a birth from one more
	// forgets the least recently seen node.
	MaxNodes int
	// MaxAliasesPerNode caps the aliases kept for one node and all its
	// devices together; aliases past it are refused and flagged.
	MaxAliasesPerNode int
	// MaxDevicesPerNode caps the devices remembered per node; a DBIRTH for
	// one more is flagged and its aliases are not kept.
	MaxDevicesPerNode int
	// MaxBytes is the budget for everything kept (names, aliases, devices),
	// estimated. When a birth would exceed it, least recently seen nodes are
	// forgotten first; if that is not enough the aliases are refused.
	MaxBytes int
}

// DefaultTrackerLimits are used by NewTracker for everything but MaxNodes.
var DefaultTrackerLimits = TrackerLimits{
	MaxNodes:          10_000,
	MaxAliasesPerNode: 100_000,
	MaxDevicesPerNode: 10_000,
	MaxBytes:          64 << 20,
}

// Estimated bookkeeping bytes per kept item, on top of its strings.
const (
	costNode   = 256
	costDevice = 128
	costAlias  = 64
)

// Counters are cumulative counts since the tracker was made, for export as
// metrics.
type Counters struct {
	Messages        uint64 // messages observed (Restore not included)
	Restored        uint64 // messages replayed through Restore
	SeqGaps         uint64 // messages whose seq was not the expected one
	BeforeBirth     uint64 // data, deaths or device births from a node or device not alive
	UnknownAliases  uint64 // metrics whose alias no birth defined
	BdSeqMismatches uint64 // NDEATHs whose bdSeq was not the birth's
	AliasesRefused  uint64 // aliases not kept because of limits
	DevicesRefused  uint64 // DBIRTHs not kept because of MaxDevicesPerNode
	NodesForgotten  uint64 // nodes dropped to make room (LRU)
	Nodes           int    // nodes currently kept
	Bytes           int    // estimated bytes currently kept
}

type aliasEntry struct {
	name     string
	datatype uint32
}

type deviceState struct {
	alive   bool
	aliases map[uint64]aliasEntry
	cost    int
}

type nodeKey struct{ group, node string }

type nodeState struct {
	key     nodeKey
	elem    *list.Element
	alive   bool  // an NBIRTH was seen (or restored) and no matching NDEATH since
	bdSeq   int64 // from the NBIRTH; -1 when it had none
	lastSeq int   // the last seq seen; -1 when unknown (after Restore)
	aliases map[uint64]aliasEntry
	devices map[string]*deviceState
	nAlias  int // aliases kept for the node and its devices
	cost    int // estimated bytes, including devices
}

// Tracker keeps the birth state of Sparkplug edge nodes and checks each
// message against it. It is safe for concurrent use; messages of one node
// must be observed in the order they were received for the seq check to mean
// anything.
type Tracker struct {
	mu    sync.RWMutex
	lim   TrackerLimits
	nodes map[nodeKey]*nodeState
	lru   list.List // of *nodeState, most recently seen at the front
	bytes int
	c     Counters
}

// NewTracker returns a tracker remembering at most maxNodes edge nodes
// (DefaultTrackerLimits.MaxNodes when maxNodes <= 0), with the other limits
// from DefaultTrackerLimits.
func NewTracker(maxNodes int) *Tracker {
	lim := DefaultTrackerLimits
	if maxNodes > 0 {
		lim.MaxNodes = maxNodes
	}
	return NewTrackerLimits(lim)
}

// NewTrackerLimits returns a tracker with the given limits; zero or negative
// fields take the DefaultTrackerLimits value.
func NewTrackerLimits(lim TrackerLimits) *Tracker {
	d := DefaultTrackerLimits
	lim.MaxNodes = orDefault(lim.MaxNodes, d.MaxNodes)
	lim.MaxAliasesPerNode = orDefault(lim.MaxAliasesPerNode, d.MaxAliasesPerNode)
	lim.MaxDevicesPerNode = orDefault(lim.MaxDevicesPerNode, d.MaxDevicesPerNode)
	lim.MaxBytes = orDefault(lim.MaxBytes, d.MaxBytes)
	return &Tracker{lim: lim, nodes: make(map[nodeKey]*nodeState)}
}

// Counters returns a snapshot of the tracker's counters.
func (t *Tracker) Counters() Counters {
	t.mu.RLock()
	defer t.mu.RUnlock()
	c := t.c
	c.Nodes = len(t.nodes)
	c.Bytes = t.bytes
	return c
}

// Result is what Observe found wrong with one message. The zero Result is a
// clean message.
type Result struct {
	// SeqGap: seq was not the previous seq + 1 (mod 256). GotSeq is -1 when
	// the message had no seq.
	SeqGap      bool
	ExpectedSeq int
	GotSeq      int64
	// BeforeBirth: NDATA, DBIRTH or NDEATH from a node not alive, or DDATA or
	// DDEATH from a device not alive.
	BeforeBirth bool
	// UnknownAliases lists aliases used without a name that no birth defined
	// (at most maxListedAliases; UnknownAliasCount has them all).
	UnknownAliases    []uint64
	UnknownAliasCount int
	// BdSeqMismatch: an NDEATH whose bdSeq is not the current birth's; the
	// node is left alive. Either side is -1 when missing.
	BdSeqMismatch bool
	BirthBdSeq    int64
	DeathBdSeq    int64
	// AliasesRefused counts aliases of this birth that limits kept out of the
	// table; DeviceRefused is set when the device itself could not be kept.
	AliasesRefused int
	DeviceRefused  bool
}

const maxListedAliases = 8

// Header names set by Result.Headers.
const (
	HeaderSeqGap        = "sparkplug-seq-gap"
	HeaderBeforeBirth   = "sparkplug-before-birth"
	HeaderUnknownAlias  = "sparkplug-unknown-alias"
	HeaderBdSeqMismatch = "sparkplug-bdseq-mismatch"
	HeaderAliasLimit    = "sparkplug-alias-limit"
	HeaderDeviceLimit   = "sparkplug-device-limit"
)

// Clean reports whether nothing was flagged.
func (r Result) Clean() bool {
	return !r.SeqGap && !r.BeforeBirth && r.UnknownAliasCount == 0 && !r.BdSeqMismatch &&
		r.AliasesRefused == 0 && !r.DeviceRefused
}

// Headers returns the flags as record header pairs, nil when clean:
//
//	sparkplug-seq-gap         "expected 5 got 7" ("got none" without a seq)
//	sparkplug-before-birth    "true"
//	sparkplug-unknown-alias   "12" or "12,40" (the first 8, then "+N more")
//	sparkplug-bdseq-mismatch  "birth 3 death 4" ("none" for a missing side)
//	sparkplug-alias-limit     number of aliases of this birth not kept
//	sparkplug-device-limit    "true"
func (r Result) Headers() [][2]string {
	if r.Clean() {
		return nil
	}
	var h [][2]string
	if r.SeqGap {
		h = append(h, [2]string{HeaderSeqGap, "expected " + strconv.Itoa(r.ExpectedSeq) + " got " + optInt(r.GotSeq)})
	}
	if r.BeforeBirth {
		h = append(h, [2]string{HeaderBeforeBirth, "true"})
	}
	if r.UnknownAliasCount > 0 {
		var b strings.Builder
		for i, a := range r.UnknownAliases {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatUint(a, 10))
		}
		if more := r.UnknownAliasCount - len(r.UnknownAliases); more > 0 {
			b.WriteString(",+" + strconv.Itoa(more) + " more")
		}
		h = append(h, [2]string{HeaderUnknownAlias, b.String()})
	}
	if r.BdSeqMismatch {
		h = append(h, [2]string{HeaderBdSeqMismatch, "birth " + optInt(r.BirthBdSeq) + " death " + optInt(r.DeathBdSeq)})
	}
	if r.AliasesRefused > 0 {
		h = append(h, [2]string{HeaderAliasLimit, strconv.Itoa(r.AliasesRefused)})
	}
	if r.DeviceRefused {
		h = append(h, [2]string{HeaderDeviceLimit, "true"})
	}
	return h
}

// Anomalies returns short reasons suitable as metric labels: "seq_gap",
// "before_birth", "unknown_alias", "bdseq_mismatch", "alias_limit",
// "device_limit". Nil when clean.
func (r Result) Anomalies() []string {
	if r.Clean() {
		return nil
	}
	var a []string
	if r.SeqGap {
		a = append(a, "seq_gap")
	}
	if r.BeforeBirth {
		a = append(a, "before_birth")
	}
	if r.UnknownAliasCount > 0 {
		a = append(a, "unknown_alias")
	}
	if r.BdSeqMismatch {
		a = append(a, "bdseq_mismatch")
	}
	if r.AliasesRefused > 0 {
		a = append(a, "alias_limit")
	}
	if r.DeviceRefused {
		a = append(a, "device_limit")
	}
	return a
}

func optInt(v int64) string {
	if v < 0 {
		return "none"
	}
	return strconv.FormatInt(v, 10)
}

// bdSeqOf returns the value of the payload's "bdSeq" metric, -1 if it has
// none (or one without an integer value).
func bdSeqOf(p *Payload) int64 {
	for _, m := range p.GetMetrics() {
		if m.GetName() != "bdSeq" {
			continue
		}
		switch m.WhichValue() {
		case Payload_Metric_LongValue_case:
			return int64(m.GetLongValue() & (1<<63 - 1))
		case Payload_Metric_IntValue_case:
			return int64(m.GetIntValue())
		}
		return -1
	}
	return -1
}

// Observe checks one message against the node's state, updates the state and
// returns what it found. Observe never rejects: the caller stores the message
// whatever the Result says. STATE, NCMD and DCMD messages are counted and
// otherwise ignored. A nil payload is treated as an empty one.
func (t *Tracker) Observe(top Topic, p *Payload) Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.c.Messages++
	r := t.apply(top, p, false)
	t.count(&r)
	return r
}

// Restore replays a stored message at start-up: NBIRTH and DBIRTH rebuild
// the alias tables, bdSeq and liveness, NDEATH and DDEATH end them, as
// Observe would, but nothing is flagged or counted as an anomaly, and the
// seq expectation is left unknown so that the first sequenced message after
// the restart sets it. Other types are ignored. Replay in log order.
func (t *Tracker) Restore(top Topic, p *Payload) {
	switch top.Type {
	case NBIRTH, DBIRTH, NDEATH, DDEATH:
	default:
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.c.Restored++
	t.apply(top, p, true)
}

func (t *Tracker) count(r *Result) {
	if r.SeqGap {
		t.c.SeqGaps++
	}
	if r.BeforeBirth {
		t.c.BeforeBirth++
	}
	t.c.UnknownAliases += uint64(r.UnknownAliasCount)
	if r.BdSeqMismatch {
		t.c.BdSeqMismatches++
	}
	t.c.AliasesRefused += uint64(r.AliasesRefused)
	if r.DeviceRefused {
		t.c.DevicesRefused++
	}
}

// apply does the work of Observe and Restore; t.mu is held. In a restore
// the findings are computed the same way and then dropped.
func (t *Tracker) apply(top Topic, p *Payload, restore bool) Result {
	var r Result
	key := nodeKey{top.Group, top.Node}
	switch top.Type {
	case NBIRTH:
		t.nodeBirth(key, p, restore, &r)
	case NDEATH:
		t.nodeDeath(key, p, &r)
	case DBIRTH:
		t.deviceBirth(key, top.Device, p, restore, &r)
	case NDATA:
		n := t.node(key, false)
		if n == nil || !n.alive {
			r.BeforeBirth = true
		}
		if n != nil {
			t.checkSeq(n, p, &r, restore)
		}
		t.checkAliases(n, nil, p, &r)
	case DDATA, DDEATH:
		n := t.node(key, false)
		var d *deviceState
		if n != nil {
			d = n.devices[top.Device]
			t.checkSeq(n, p, &r, restore)
		}
		if n == nil || !n.alive || d == nil || !d.alive {
			r.BeforeBirth = true
		}
		if top.Type == DDATA {
			t.checkAliases(n, d, p, &r)
		} else if d != nil {
			d.alive = false
		}
	}
	if restore {
		return Result{}
	}
	return r
}

// nodeBirth starts a node session: new alias table, bdSeq, and the seq
// count from the birth's seq (unknown in a restore).
func (t *Tracker) nodeBirth(key nodeKey, p *Payload, restore bool, r *Result) {
	n := t.node(key, true)
	t.resetNode(n, restore)
	n.alive = true
	n.bdSeq = bdSeqOf(p)
	n.lastSeq = -1
	if !restore && p.HasSeq() && p.GetSeq() <= 255 {
		n.lastSeq = int(p.GetSeq())
	}
	r.AliasesRefused = t.learn(n, &n.aliases, nil, p)
}

// nodeDeath ends the session when the death's bdSeq is the birth's; any
// other bdSeq is the will of an earlier session, delivered late, and the
// current session stays alive.
func (t *Tracker) nodeDeath(key nodeKey, p *Payload, r *Result) {
	n := t.node(key, false)
	death := bdSeqOf(p)
	if n != nil && n.bdSeq != death {
		r.BdSeqMismatch, r.BirthBdSeq, r.DeathBdSeq = true, n.bdSeq, death
	}
	if n == nil || !n.alive {
		r.BeforeBirth = true
		return
	}
	if r.BdSeqMismatch {
		return
	}
	n.alive = false
	for _, d := range n.devices {
		d.alive = false
	}
}

// deviceBirth replaces a device's alias table, making the device (within
// MaxDevicesPerNode) and, if need be, its node.
func (t *Tracker) deviceBirth(key nodeKey, device string, p *Payload, restore bool, r *Result) {
	n := t.node(key, true)
	if !n.alive {
		r.BeforeBirth = true
	}
	t.checkSeq(n, p, r, restore)
	d := n.devices[device]
	if d == nil {
		if len(n.devices) >= t.lim.MaxDevicesPerNode {
			r.DeviceRefused = true
			return
		}
		d = &deviceState{cost: costDevice + len(device)}
		if n.devices == nil {
			n.devices = make(map[string]*deviceState)
		}
		n.devices[strings.Clone(device)] = d
		n.cost += d.cost
		t.bytes += d.cost
	}
	t.forgetAliases(n, d.aliases, &d.cost)
	d.aliases = nil
	d.alive = true
	r.AliasesRefused = t.learn(n, &d.aliases, d, p)
}

// node finds the state for key, making it when create is set, and marks it
// most recently seen.
func (t *Tracker) node(key nodeKey, create bool) *nodeState {
	n := t.nodes[key]
	if n != nil {
		t.lru.MoveToFront(n.elem)
		return n
	}
	if !create {
		return nil
	}
	for len(t.nodes) >= t.lim.MaxNodes && t.forgetOldest(nil) {
	}
	key = nodeKey{strings.Clone(key.group), strings.Clone(key.node)}
	n = &nodeState{key: key, bdSeq: -1, lastSeq: -1, cost: costNode + len(key.group) + len(key.node)}
	n.elem = t.lru.PushFront(n)
	t.nodes[key] = n
	t.bytes += n.cost
	return n
}

// forgetOldest drops the least recently seen node other than keep, reporting
// whether there was one.
func (t *Tracker) forgetOldest(keep *nodeState) bool {
	e := t.lru.Back()
	if e != nil && e.Value.(*nodeState) == keep {
		e = e.Prev()
	}
	if e == nil {
		return false
	}
	n := e.Value.(*nodeState)
	t.lru.Remove(e)
	delete(t.nodes, n.key)
	t.bytes -= n.cost
	t.c.NodesForgotten++
	return true
}

// resetNode forgets a node's aliases and devices before a new NBIRTH: a new
// session means new device births too.
//
// A restore keeps the device tables, only marking the devices not alive:
// when a node's records are spread over partitions (a rule keyed by device),
// replay can meet a DBIRTH before the NBIRTH it followed, and dropping its
// aliases would leave that device unresolvable until its next birth. In log
// order the cost is only a stale table kept for a device that does not come
// back, whose data is flagged as before birth anyway.
func (t *Tracker) resetNode(n *nodeState, keepDevices bool) {
	base := costNode + len(n.key.group) + len(n.key.node)
	var devCost, devAliases int
	if keepDevices {
		for _, d := range n.devices {
			d.alive = false
			devCost += d.cost
			devAliases += len(d.aliases)
		}
	} else {
		n.devices = nil
	}
	t.bytes -= n.cost - base - devCost
	n.cost = base + devCost
	n.aliases = nil
	n.nAlias = devAliases
}

func (t *Tracker) forgetAliases(n *nodeState, m map[uint64]aliasEntry, devCost *int) {
	for _, e := range m {
		c := costAlias + len(e.name)
		n.cost -= c
		t.bytes -= c
		*devCost -= c
		n.nAlias--
	}
}

// learn records the name and datatype of every aliased metric of a birth in
// *table, within the node's alias limit and the byte budget; it returns how
// many aliases were refused.
func (t *Tracker) learn(n *nodeState, table *map[uint64]aliasEntry, d *deviceState, p *Payload) (refused int) {
	for _, m := range p.GetMetrics() {
		if !m.HasAlias() || !m.HasName() {
			continue
		}
		a := m.GetAlias()
		if old, ok := (*table)[a]; ok {
			// The same alias twice in one birth: the last one wins.
			c := costAlias + len(old.name)
			n.cost -= c
			t.bytes -= c
			if d != nil {
				d.cost -= c
			}
			n.nAlias--
			delete(*table, a)
		}
		name := m.GetName()
		c := costAlias + len(name)
		if n.nAlias >= t.lim.MaxAliasesPerNode {
			refused++
			continue
		}
		for t.bytes+c > t.lim.MaxBytes && t.forgetOldest(n) {
		}
		if t.bytes+c > t.lim.MaxBytes {
			refused++
			continue
		}
		if *table == nil {
			*table = make(map[uint64]aliasEntry)
		}
		(*table)[a] = aliasEntry{name: strings.Clone(name), datatype: m.GetDatatype()}
		n.nAlias++
		n.cost += c
		t.bytes += c
		if d != nil {
			d.cost += c
		}
	}
	return refused
}

// checkSeq compares the payload's seq with the node's expectation and moves
// the expectation on.
func (t *Tracker) checkSeq(n *nodeState, p *Payload, r *Result, restore bool) {
	got := int64(-1)
	if p.HasSeq() {
		got = int64(p.GetSeq() & (1<<63 - 1))
	}
	if restore {
		n.lastSeq = -1
		return
	}
	if n.lastSeq < 0 {
		if got >= 0 && got <= 255 {
			n.lastSeq = int(got)
		}
		return
	}
	want := (n.lastSeq + 1) % 256
	if got != int64(want) {
		r.SeqGap, r.ExpectedSeq, r.GotSeq = true, want, got
	}
	if got >= 0 && got <= 255 {
		n.lastSeq = int(got) // resynchronise: one loss is one flag
	} else {
		n.lastSeq = want
	}
}

// checkAliases flags metrics that carry an alias but no name when the alias
// is in neither the device's nor the node's table.
func (t *Tracker) checkAliases(n *nodeState, d *deviceState, p *Payload, r *Result) {
	for _, m := range p.GetMetrics() {
		if m.HasName() || !m.HasAlias() {
			continue
		}
		a := m.GetAlias()
		if _, ok := lookup(n, d, a); ok {
			continue
		}
		r.UnknownAliasCount++
		if len(r.UnknownAliases) < maxListedAliases {
			r.UnknownAliases = append(r.UnknownAliases, a)
		}
	}
}

func lookup(n *nodeState, d *deviceState, alias uint64) (aliasEntry, bool) {
	if d != nil {
		if e, ok := d.aliases[alias]; ok {
			return e, true
		}
	}
	if n != nil {
		e, ok := n.aliases[alias]
		return e, ok
	}
	return aliasEntry{}, false
}

// resolver looks up aliases for one topic; t.mu must be read-held while it
// is used.
func (t *Tracker) resolver(top Topic) (*nodeState, *deviceState) {
	n := t.nodes[nodeKey{top.Group, top.Node}]
	if n == nil {
		return nil, nil
	}
	if top.Device != "" {
		return n, n.devices[top.Device]
	}
	return n, nil
}

// Resolve returns the name and datatype an alias stands for in messages on
// top, as the births seen so far define it.
func (t *Tracker) Resolve(top Topic, alias uint64) (name string, datatype DataType, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n, d := t.resolver(top)
	e, ok := lookup(n, d, alias)
	return e.name, DataType(e.datatype), ok
}
