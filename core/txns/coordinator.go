// Package txns is the core broker's transaction coordinator (KIP-98): it
// maps transactional ids to producer ids and epochs (fencing an old
// producer instance when a new one calls InitProducerId), tracks which
// partitions and consumer groups each transaction touched, and ends a
// transaction by having a commit or abort marker written to every one of
// them. Transactions that outlive their timeout are aborted.
//
// The state machine per transactional id:
//
//	Empty ──AddPartitions/AddOffsets──▶ Ongoing ──EndTxn──▶ PrepareCommit|PrepareAbort
//	  ▲                                                          │ markers written
//	  └──────────── InitProducerId (epoch+1) ◀── CompleteCommit|CompleteAbort ◀┘
//
// Every state change is saved through a Store before it is acted on (the
// broker replicates it like committed offsets), so a coordinator that takes
// over finishes every Prepare* transaction and times out every Ongoing one.
// The coordinator knows nothing of partitions or logs: markers go through
// the Markers interface the broker implements.
package txns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tributary-io/tributary/internal/tick"
)

// State is a transaction's state.
type State int8

// The transaction states, as DescribeTransactions names them.
const (
	Empty State = iota
	Ongoing
	PrepareCommit
	PrepareAbort
	CompleteCommit
	CompleteAbort
)

var stateNames = []string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort"}

func (s State) String() string {
	if int(s) < len(stateNames) && s >= 0 {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

// ParseState is the inverse of String (ListTransactions filters by name).
func ParseState(name string) (State, bool) {
	i := slices.Index(stateNames, name)
	return State(i), i >= 0
}

// TopicPartition names one partition in a transaction.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// Txn is the saved state of one transactional id.
type Txn struct {
	ID         string           `json:"id"`
	ProducerID int64            `json:"pid"`
	Epoch      int16            `json:"epoch"`
	State      State            `json:"state"`
	TimeoutMs  int32            `json:"timeout_ms"`
	Partitions []TopicPartition `json:"partitions,omitempty"`
	Groups     []string         `json:"groups,omitempty"`
	StartMs    int64            `json:"start_ms"` // when it became Ongoing
	UpdateMs   int64            `json:"update_ms"`
	// Fenced is set when the abort that ended the transaction took a new
	// epoch (a timeout or a new instance); the next InitProducerId hands
	// that epoch out instead of bumping again.
	Fenced bool `json:"fenced,omitempty"`
	// Unsynced lists, oldest first, the ends of this id's earlier
	// transactions whose markers may not be durable yet (DeferredMarkers).
	// Every state saved meanwhile carries them, so a coordinator that
	// loads that state writes again whichever of those markers a crash
	// lost.
	Unsynced []Ended `json:"unsynced,omitempty"`
}

// Ended is a decided transaction whose markers were written where Marks
// say, but perhaps not yet made durable.
type Ended struct {
	ProducerID int64  `json:"pid"`
	Epoch      int16  `json:"epoch"`
	Commit     bool   `json:"commit"`
	Marks      []Mark `json:"marks"`
}

// Mark is where one marker was written: its partition and offset.
type Mark struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Store saves transaction state durably (and, in a cluster, replicated)
// before the coordinator acts on it.
//
// With durable false the save may return once the state is written, before
// it is durable; it must become durable no later than any save after it
// (a log does this by order). The coordinator saves Complete* this way: if
// a crash loses it, the transaction is found in Prepare* and its markers
// are written again, which is harmless, and no later state of the same id
// can have been acknowledged without it.
type Store interface {
	SaveTxn(ctx context.Context, t Txn, durable bool) error
	// DeleteTxn forgets an expired transactional id (a tombstone in the
	// state log). It need not be durable: an id that comes back after a
	// crash expires again.
	DeleteTxn(ctx context.Context, id string) error
}

// Markers writes the end of a transaction: a control batch to each
// partition and the pending offsets of each group made visible (commit) or
// dropped (abort). It must be safe to repeat.
type Markers interface {
	WriteMarkers(ctx context.Context, pid int64, epoch int16, commit bool, parts []TopicPartition, groups []string) error
}

// DeferredMarkers is a Markers that can leave some markers' durability
// for later, so the producer's next transaction need not wait for it (the
// fsync of every partition in the transaction, one more per transaction
// on the producer's path).
//
// The coordinator uses it when Config.Markers implements it: it lets the
// id's next request in once WriteMarkersDeferred returns, saves the Ended
// with every state of the id until wait succeeds, and then saves
// Complete*. A coordinator that loads a state with an Ended calls
// RewriteMarkers before it serves the id again.
type DeferredMarkers interface {
	Markers
	// WriteMarkersDeferred is WriteMarkers, except that the markers listed
	// in marks are written but may not be durable until wait returns nil
	// (wait is nil when marks is empty). Every marker is in its
	// partition's log before it returns, ahead of anything the producer
	// writes next.
	WriteMarkersDeferred(ctx context.Context, pid int64, epoch int16, commit bool, parts []TopicPartition, groups []string) (marks []Mark, wait func(context.Context) error, err error)
	// RewriteMarkers writes, durably, each of e's markers that a crash
	// lost: where the partition still holds e's producer's transaction
	// open from before the mark's offset. Where the marker survived, the
	// producer's open transaction (if any) is a later one and is left
	// alone.
	RewriteMarkers(ctx context.Context, e Ended) error
}

// Config is what the coordinator needs from the broker.
type Config struct {
	Store   Store
	Markers Markers
	// NewProducerID allocates a producer id never handed out before.
	NewProducerID func() (int64, error)
	// MaxTimeout bounds the transaction timeout a producer may ask for
	// (transaction.max.timeout.ms). Default 15 minutes.
	MaxTimeout time.Duration
	// TickInterval is how often timeouts and unfinished markers are
	// checked. Default 200ms.
	TickInterval time.Duration
	// MarkerTimeout bounds one attempt at writing markers. Default 30s.
	MarkerTimeout time.Duration
	// IDExpiration forgets a transactional id with no transaction open
	// that has not been used for this long (transactional.id.expiration.ms);
	// an application that starts with a new id every time would otherwise
	// grow the state for ever. Default 7 days.
	IDExpiration time.Duration
	// BusyWait is how long a request for a transactional id waits for the
	// id's running operation (typically the markers of the transaction it
	// just committed) before it is answered CONCURRENT_TRANSACTIONS, which
	// clients retry only after a backoff (20 ms in franz-go). Default 5s.
	BusyWait time.Duration
}

func (c Config) withDefaults() Config {
	c.MaxTimeout = positiveOr(c.MaxTimeout, 15*time.Minute)
	c.TickInterval = positiveOr(c.TickInterval, 200*time.Millisecond)
	c.MarkerTimeout = positiveOr(c.MarkerTimeout, 30*time.Second)
	c.IDExpiration = positiveOr(c.IDExpiration, 7*24*time.Hour)
	c.BusyWait = positiveOr(c.BusyWait, 5*time.Second)
	return c
}

// positiveOr is d, or def when d is unset (zero or negative).
func positiveOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Coordinator serves the transactional ids this broker coordinates.
type Coordinator struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex
	txns   map[string]*entry
	closed bool // no new background work once set

	// ctx is cancelled by Close; the timer and background completions
	// run under it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// entry is one transactional id; busy is set while an operation that does
// I/O (saving, markers) runs outside the lock. Requests for the same id
// wait for idle (up to BusyWait), then are told CONCURRENT_TRANSACTIONS.
type entry struct {
	Txn
	busy bool
	idle chan struct{} // closed when busy ends; nil while not busy
	// fails counts the timer's failed attempts at finishing it, so an
	// outage is logged once in a while, not every tick.
	fails int
	// unsynced are the ends, oldest first, whose markers may not be
	// durable yet (saved with every state meanwhile: saveTxn).
	unsynced []*Ended
	// rewriting: loaded with an unsynced end whose lost markers are being
	// written again; the producer's writes must wait (Rewriting).
	rewriting bool
	// moved: its state log partition moved to another broker while it was
	// busy (Unload); whatever holds it lets it go when it is done.
	moved bool
}

// NewCoordinator starts a coordinator; its timer goroutine runs until Close.
func NewCoordinator(cfg Config, logger *slog.Logger) *Coordinator {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Coordinator{
		cfg:  cfg.withDefaults(),
		log:  logger.With("component", "txns"),
		now:  time.Now,
		txns: map[string]*entry{},
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.run()
	return c
}

// Close stops the timer goroutine and the completions still running, and
// waits for them (each is bounded by MarkerTimeout; cancelling cuts it
// short). A transaction whose markers were not written stays Prepare* in
// the state log, and whoever loads it next finishes it.
func (c *Coordinator) Close() {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
	})
	c.wg.Wait()
}

// markBusy marks e busy; c.mu is held.
func (e *entry) markBusy() {
	e.busy = true
	e.idle = make(chan struct{})
}

// markIdle ends a busy spell; c.mu is held.
func (e *entry) markIdle() {
	e.busy = false
	if e.idle != nil {
		close(e.idle)
		e.idle = nil
	}
}

// waitIdle waits, with c.mu released, until e is no longer busy; it
// reports false when ctx ends or BusyWait passes first. c.mu is held on
// entry and on return.
func (c *Coordinator) waitIdle(ctx context.Context, e *entry, deadline time.Time) bool {
	idle := e.idle
	c.mu.Unlock()
	defer c.mu.Lock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// Load adds saved transactions (a coordinator taking over a partition of
// the state log). Prepare* ones are finished and Ongoing ones time out
// from the moment they are loaded.
func (c *Coordinator) Load(txns []Txn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UnixMilli()
	for _, t := range txns {
		if e := c.txns[t.ID]; e != nil && e.busy {
			e.moved = false // back before it was let go: it stays
			continue
		}
		if t.State == Ongoing {
			t.StartMs = max(t.StartMs, now-int64(t.TimeoutMs)/2) // give the producer a moment to finish
		}
		e := &entry{Txn: t}
		for _, u := range t.Unsynced {
			e.unsynced = append(e.unsynced, &u)
		}
		e.Unsynced = nil
		c.txns[t.ID] = e
		if len(e.unsynced) > 0 && !c.closed {
			// Busy until the markers a crash may have lost are back, so
			// that nothing of this id runs before them.
			e.markBusy()
			e.rewriting = true
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.rewrite(c.ctx, e)
			}()
		}
	}
}

// rewrite writes again the markers of e's previous transaction that a
// crash lost (Load marked e busy), retrying until it succeeds or the
// coordinator closes.
func (c *Coordinator) rewrite(ctx context.Context, e *entry) {
	dm, _ := c.cfg.Markers.(DeferredMarkers)
	var ends []Ended
	for _, u := range e.unsynced {
		ends = append(ends, *u)
	}
	rewritten := false
	for attempt := 1; ; attempt++ {
		c.mu.Lock()
		moved := e.moved
		c.mu.Unlock()
		if moved {
			// The state log partition went to another broker, which loads
			// the same ends and rewrites what was lost itself.
			c.log.Info("transaction state moved before its markers were rewritten; the new coordinator rewrites them", "txn", e.ID)
			c.done(e, e.Txn, false)
			return
		}
		var err error
		switch {
		case dm == nil:
			err = errors.New("markers cannot be rewritten: Markers is not a DeferredMarkers")
		case !rewritten:
			// Oldest first: where an older end's marker was lost, every
			// later one there was lost with it (a log is durable as a
			// prefix), and the open transaction is the older one's.
			mctx, cancel := context.WithTimeout(ctx, c.cfg.MarkerTimeout)
			for len(ends) > 0 && err == nil {
				if err = dm.RewriteMarkers(mctx, ends[0]); err == nil {
					ends = ends[1:]
				}
			}
			cancel()
			rewritten = err == nil
		}
		if rewritten {
			// Save the state without the end before serving the id: a
			// later load must not check the marks again once the
			// producer's next transaction may have data below them.
			c.mu.Lock()
			e.unsynced = nil
			c.mu.Unlock()
			if err = c.saveTxn(ctx, e.Txn, true); err == nil {
				c.mu.Lock()
				e.rewriting = false
				c.mu.Unlock()
				c.done(e, e.Txn, false)
				return
			}
			if errors.Is(err, ErrNotCoordinator) {
				c.done(e, e.Txn, false)
				c.forget(e)
				return
			}
		}
		if attempt == 1 || attempt%50 == 0 {
			c.log.Warn("markers of a loaded transaction not rewritten yet; will retry", "txn", e.ID, "attempts", attempt, "err", err)
		}
		if !tick.Sleep(ctx, c.cfg.TickInterval) {
			c.done(e, e.Txn, false)
			return
		}
	}
}

// Unload forgets the transactional ids keep rejects (their state log
// partition moved to another broker).
func (c *Coordinator) Unload(keep func(id string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.txns {
		switch {
		case keep(id):
		case e.busy:
			e.moved = true // done forgets it
		default:
			delete(c.txns, id)
		}
	}
}

// Result is a producer id and epoch, or an error code.
type Result struct {
	ProducerID int64
	Epoch      int16
	Code       int16
}

// InitProducerID gives transactional id its producer id at a new epoch,
// fencing every older instance; an ongoing transaction is aborted first.
// pid and epoch are what the producer had (-1 when it had nothing).
func (c *Coordinator) InitProducerID(ctx context.Context, id string, timeoutMs int32, pid int64, epoch int16) Result {
	fail := func(code int16) Result { return Result{ProducerID: -1, Epoch: -1, Code: code} }
	if timeoutMs <= 0 || time.Duration(timeoutMs)*time.Millisecond > c.cfg.MaxTimeout {
		return fail(kerr.InvalidTransactionTimeout.Code)
	}
	c.mu.Lock()
	e := c.txns[id]
	for deadline := time.Now().Add(c.cfg.BusyWait); e != nil && e.busy; e = c.txns[id] {
		if !c.waitIdle(ctx, e, deadline) {
			c.mu.Unlock()
			return fail(kerr.ConcurrentTransactions.Code)
		}
	}
	switch {
	case e != nil && pid >= 0 && (pid != e.ProducerID || epoch != e.Epoch):
		// KIP-360: a producer bumping its own epoch must still be current.
		c.mu.Unlock()
		return fail(kerr.ProducerFenced.Code)
	case e != nil && (e.State == PrepareCommit || e.State == PrepareAbort):
		c.mu.Unlock()
		return fail(kerr.ConcurrentTransactions.Code)
	}
	if e == nil {
		e = &entry{Txn: Txn{ID: id, ProducerID: -1, Epoch: -1}}
		c.txns[id] = e
	}
	e.markBusy()
	before := e.Txn
	c.mu.Unlock()

	next, code := c.initLocked(ctx, before, timeoutMs)
	c.mu.Lock()
	defer c.mu.Unlock()
	e.markIdle()
	if code != 0 {
		if before.ProducerID < 0 {
			delete(c.txns, id)
		}
		return fail(code)
	}
	e.Txn = next
	return Result{ProducerID: next.ProducerID, Epoch: next.Epoch}
}

// initLocked does InitProducerID's I/O with the entry marked busy.
func (c *Coordinator) initLocked(ctx context.Context, t Txn, timeoutMs int32) (Txn, int16) {
	if t.State == Ongoing {
		// The new instance fences the old one: abort its transaction with
		// the bumped epoch, so its in-flight writes are refused too.
		aborted, code := c.end(ctx, t, false, true)
		if code != 0 {
			return t, code
		}
		t = aborted
	}
	now := c.now().UnixMilli()
	if t.ProducerID < 0 || t.Epoch >= 32766 {
		pid, err := c.cfg.NewProducerID()
		if err != nil {
			c.log.Error("allocate producer id", "txn", t.ID, "err", err)
			return t, kerr.KafkaStorageError.Code
		}
		t.ProducerID, t.Epoch = pid, 0
	} else if !t.Fenced {
		t.Epoch++
	}
	t.Fenced = false
	t.State, t.TimeoutMs, t.Partitions, t.Groups, t.StartMs, t.UpdateMs = Empty, timeoutMs, nil, nil, -1, now
	if err := c.saveTxn(ctx, t, true); err != nil {
		c.log.Warn("save transaction state", "txn", t.ID, "err", err)
		return t, storeCode(err)
	}
	return t, 0
}

// saveTxn saves t with the end of the id's previous transaction attached
// while that end's markers may not be durable.
func (c *Coordinator) saveTxn(ctx context.Context, t Txn, durable bool) error {
	c.mu.Lock()
	if e := c.txns[t.ID]; e != nil {
		t.Unsynced = nil
		for _, u := range e.unsynced {
			t.Unsynced = append(t.Unsynced, *u)
		}
	}
	c.mu.Unlock()
	return c.cfg.Store.SaveTxn(ctx, t, durable)
}

// storeCode is what a client is told when state could not be saved: a
// retriable error, as the coordinator may just have moved.
func storeCode(err error) int16 {
	if errors.Is(err, ErrNotCoordinator) {
		return kerr.NotCoordinator.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}

// ErrNotCoordinator is what a Store returns when this broker no longer
// leads the transaction's state log partition.
var ErrNotCoordinator = errors.New("txns: not the coordinator")

// begin checks a request against the current producer and marks the entry
// busy; it returns an error code when the request must be refused. While
// the entry is busy (the markers of the transaction the producer just
// ended, say) it waits, up to BusyWait, rather than answer
// CONCURRENT_TRANSACTIONS at once.
func (c *Coordinator) begin(ctx context.Context, id string, pid int64, epoch int16) (*entry, int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	deadline := time.Now().Add(c.cfg.BusyWait)
	for {
		e := c.txns[id]
		switch {
		case e == nil || e.ProducerID < 0:
			return nil, kerr.InvalidProducerIDMapping.Code
		case e.ProducerID != pid:
			return nil, kerr.InvalidProducerIDMapping.Code
		case epoch != e.Epoch:
			return nil, kerr.ProducerFenced.Code
		case e.busy:
			if !c.waitIdle(ctx, e, deadline) {
				return nil, kerr.ConcurrentTransactions.Code
			}
			continue // look again: the epoch may have moved meanwhile
		case e.State == PrepareCommit, e.State == PrepareAbort:
			return nil, kerr.ConcurrentTransactions.Code
		}
		e.markBusy()
		return e, 0
	}
}

func (c *Coordinator) done(e *entry, t Txn, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.markIdle()
	if ok {
		e.Txn = t
	}
	if e.moved && c.txns[e.ID] == e {
		delete(c.txns, e.ID)
	}
}

// forget drops an entry whose state log partition moved away while it was
// busy (Unload skipped it): the new coordinator finishes it.
func (c *Coordinator) forget(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.txns[e.ID] == e && !e.busy {
		delete(c.txns, e.ID)
	}
}

// Add puts partitions and groups into the producer's transaction, starting
// it if none is ongoing.
func (c *Coordinator) Add(ctx context.Context, id string, pid int64, epoch int16, parts []TopicPartition, groups []string) int16 {
	e, code := c.begin(ctx, id, pid, epoch)
	if code != 0 {
		return code
	}
	t := e.Txn
	t.Partitions, t.Groups = slices.Clone(t.Partitions), slices.Clone(t.Groups)
	changed := false
	if t.State != Ongoing {
		t.State, t.Partitions, t.Groups, t.StartMs = Ongoing, nil, nil, c.now().UnixMilli()
		changed = true
	}
	for _, p := range parts {
		if !slices.Contains(t.Partitions, p) {
			t.Partitions = append(t.Partitions, p)
			changed = true
		}
	}
	for _, g := range groups {
		if !slices.Contains(t.Groups, g) {
			t.Groups = append(t.Groups, g)
			changed = true
		}
	}
	if !changed {
		c.done(e, t, false)
		return 0
	}
	t.UpdateMs = c.now().UnixMilli()
	if err := c.saveTxn(ctx, t, true); err != nil {
		c.log.Warn("save transaction state", "txn", id, "err", err)
		c.done(e, t, false)
		return storeCode(err)
	}
	c.done(e, t, true)
	return 0
}

// Ongoing reports whether the producer (at its current epoch) has an
// ongoing transaction that includes group: TxnOffsetCommit needs that.
func (c *Coordinator) Ongoing(id string, pid int64, epoch int16, group string) int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.txns[id]
	switch {
	case e == nil || e.ProducerID != pid:
		return kerr.InvalidProducerIDMapping.Code
	case e.Epoch != epoch:
		return kerr.ProducerFenced.Code
	case e.State != Ongoing || !slices.Contains(e.Groups, group):
		return kerr.InvalidTxnState.Code
	}
	return 0
}

// EndTxn commits or aborts the producer's transaction. A retried EndTxn of
// a transaction that already ended the same way succeeds.
//
// It answers once the decision (Prepare*) is durable, as Kafka does; the
// markers and the Complete* state are written in the background, with the
// entry busy, so the producer's next request for this id waits for them
// (begin) and a crash before they land leaves a Prepare* transaction that
// whoever loads the state log finishes.
func (c *Coordinator) EndTxn(ctx context.Context, id string, pid int64, epoch int16, commit bool) int16 {
	e, code := c.begin(ctx, id, pid, epoch)
	if code != 0 {
		return code
	}
	t := e.Txn
	switch {
	case t.State == CompleteCommit && commit, t.State == CompleteAbort && !commit:
		c.done(e, t, false)
		return 0
	case t.State != Ongoing:
		c.done(e, t, false)
		return kerr.InvalidTxnState.Code
	}
	prepared, code := c.prepare(ctx, t, commit, false)
	if code != 0 {
		c.done(e, t, false)
		return code
	}
	c.mu.Lock()
	e.Txn = prepared // still busy: the completion below owns the entry
	if c.closed {
		c.mu.Unlock()
		c.done(e, prepared, true) // the next coordinator finishes it
		return 0
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		c.finish(c.ctx, e, prepared)
	}()
	return 0
}

// finish writes the markers of e's Prepare* transaction t and ends the
// busy spell its caller began: the entry becomes Complete*, or stays
// Prepare* for the timer to retry (logged now and then, not every tick),
// or is forgotten when its state log partition moved to another broker.
func (c *Coordinator) finish(ctx context.Context, e *entry, t Txn) {
	if dm, ok := c.cfg.Markers.(DeferredMarkers); ok {
		c.finishDeferred(ctx, e, t, dm)
		return
	}
	next, err := c.complete(ctx, t)
	c.settle(e, next, err)
}

// maxUnsynced bounds the ends kept unsynced for one id; past it (markers
// that keep failing to become durable) ends take the durable way.
const maxUnsynced = 8

// finishDeferred is finish with a DeferredMarkers: the entry is idle again
// as soon as every marker is written, with the end kept in e.unsynced
// until the markers are durable; when the last end is durable the id's
// state is saved again without ends (Complete* when nothing newer began).
func (c *Coordinator) finishDeferred(ctx context.Context, e *entry, t Txn, dm DeferredMarkers) {
	mctx, cancel := context.WithTimeout(ctx, c.cfg.MarkerTimeout)
	defer cancel()
	c.mu.Lock()
	backlog := len(e.unsynced)
	c.mu.Unlock()
	if backlog >= maxUnsynced {
		// Earlier ends' markers did not become durable (their waits
		// failed; they stay attached for whoever loads the id next):
		// write this one's the durable way.
		next, err := c.complete(ctx, t)
		c.settle(e, next, err)
		return
	}
	commit := t.State == PrepareCommit
	marks, wait, err := dm.WriteMarkersDeferred(mctx, t.ProducerID, t.Epoch, commit, t.Partitions, t.Groups)
	if err != nil {
		c.settle(e, t, fmt.Errorf("markers for %q: %w", t.ID, err))
		return
	}
	if len(marks) == 0 { // every marker durable already
		next, err := c.saveComplete(ctx, t)
		c.settle(e, next, err)
		return
	}
	done := completed(t, c.now())
	ended := &Ended{ProducerID: t.ProducerID, Epoch: t.Epoch, Commit: commit, Marks: marks}
	c.mu.Lock()
	e.unsynced = append(e.unsynced, ended)
	c.mu.Unlock()
	e.fails = 0
	c.done(e, done, true) // the producer's next transaction may begin
	if err := wait(mctx); err != nil {
		// The Ended stays attached: whoever loads the id's state next
		// rewrites what is missing.
		c.log.Warn("transaction markers written but not made durable", "txn", t.ID, "err", err)
		return
	}
	c.mu.Lock()
	e.unsynced = slices.DeleteFunc(e.unsynced, func(u *Ended) bool { return u == ended })
	// The last end durable: save the id's current state without ends
	// (Complete* of this or a later transaction, or the next one ongoing),
	// unless an operation of the id is saving one anyway, or the entry was
	// unloaded or replaced meanwhile.
	resave := len(e.unsynced) == 0 && c.txns[e.ID] == e && !e.busy &&
		(e.State == CompleteCommit || e.State == CompleteAbort || e.State == Ongoing)
	if resave {
		e.markBusy()
	}
	cur := e.Txn
	c.mu.Unlock()
	if resave {
		if err := c.saveTxn(ctx, cur, false); err != nil {
			c.log.Warn("save transaction state", "txn", t.ID, "err", err)
		}
		c.done(e, cur, false)
	}
}

// settle ends finish's busy spell: e becomes next (Complete*) on success,
// or stays Prepare* for the timer to retry (logged now and then, not every
// tick), or is forgotten when its state log partition moved away.
func (c *Coordinator) settle(e *entry, next Txn, err error) {
	if err != nil {
		if e.fails++; e.fails == 1 || e.fails%50 == 0 {
			c.log.Warn("transaction markers not written yet; will retry", "txn", next.ID, "state", next.State, "attempts", e.fails, "err", err)
		}
	}
	c.done(e, next, err == nil)
	if errors.Is(err, ErrNotCoordinator) {
		c.forget(e)
	}
}

// end takes an ongoing transaction through Prepare* to Complete* before it
// returns (timeouts and fencing aborts). If the markers fail, the
// transaction stays in Prepare* and the timer goroutine retries them; the
// outcome is decided either way.
// fence bumps the epoch first (a timeout or a new instance aborting).
func (c *Coordinator) end(ctx context.Context, t Txn, commit, fence bool) (Txn, int16) {
	t, code := c.prepare(ctx, t, commit, fence)
	if code != 0 {
		return t, code
	}
	done, err := c.complete(ctx, t)
	if err != nil {
		c.log.Warn("transaction markers not written yet; will retry", "txn", t.ID, "state", t.State, "err", err)
		return t, 0
	}
	return done, 0
}

// prepare saves the decision about an ongoing transaction (Prepare*),
// durably, before any marker is written.
func (c *Coordinator) prepare(ctx context.Context, t Txn, commit, fence bool) (Txn, int16) {
	t.Partitions, t.Groups = slices.Clone(t.Partitions), slices.Clone(t.Groups)
	t.State = PrepareAbort
	if commit {
		t.State = PrepareCommit
	}
	if fence {
		if t.Epoch >= 32766 {
			// No epoch left to fence with: the next InitProducerId takes a
			// new producer id, which fences just as well.
			fence = false
		} else {
			t.Epoch++
		}
	}
	t.UpdateMs, t.Fenced = c.now().UnixMilli(), fence
	if err := c.saveTxn(ctx, t, true); err != nil {
		c.log.Warn("save transaction decision", "txn", t.ID, "err", err)
		return t, storeCode(err)
	}
	return t, 0
}

// complete writes the markers of a Prepare* transaction and saves it as
// Complete* (not waiting for that save to be durable: see Store).
func (c *Coordinator) complete(ctx context.Context, t Txn) (Txn, error) {
	mctx, cancel := context.WithTimeout(ctx, c.cfg.MarkerTimeout)
	defer cancel()
	if err := c.cfg.Markers.WriteMarkers(mctx, t.ProducerID, t.Epoch, t.State == PrepareCommit, t.Partitions, t.Groups); err != nil {
		return t, fmt.Errorf("markers for %q: %w", t.ID, err)
	}
	return c.saveComplete(ctx, t)
}

// completed is Prepare* transaction t once its markers are written.
func completed(t Txn, now time.Time) Txn {
	if t.State == PrepareCommit {
		t.State = CompleteCommit
	} else {
		t.State = CompleteAbort
	}
	t.UpdateMs = now.UnixMilli()
	return t
}

// saveComplete saves t, whose markers are durable, as Complete*.
func (c *Coordinator) saveComplete(ctx context.Context, t Txn) (Txn, error) {
	done := completed(t, c.now())
	if err := c.saveTxn(ctx, done, false); err != nil {
		return t, fmt.Errorf("save completed %q: %w", t.ID, err)
	}
	return done, nil
}

// run aborts timed-out transactions and finishes Prepare* ones whose
// markers failed or that were loaded from the state log.
func (c *Coordinator) run() {
	defer c.wg.Done()
	for range tick.Every(c.ctx, c.cfg.TickInterval) {
		c.tick(c.ctx)
	}
}

func (c *Coordinator) tick(ctx context.Context) {
	now := c.now().UnixMilli()
	var due, expired []*entry
	c.mu.Lock()
	for _, e := range c.txns {
		if e.busy {
			continue
		}
		switch {
		case e.State == Empty || e.State == CompleteCommit || e.State == CompleteAbort:
			if now-e.UpdateMs > c.cfg.IDExpiration.Milliseconds() {
				e.markBusy()
				expired = append(expired, e)
			}
		case e.State == PrepareCommit || e.State == PrepareAbort,
			e.State == Ongoing && now-e.StartMs > int64(e.TimeoutMs):
			e.markBusy()
			due = append(due, e)
		}
	}
	c.mu.Unlock()
	c.expire(ctx, expired)
	for _, e := range due {
		if ctx.Err() != nil {
			c.done(e, e.Txn, false)
			continue
		}
		if e.State == Ongoing {
			c.log.Info("aborting timed-out transaction", "txn", e.ID, "pid", e.ProducerID, "epoch", e.Epoch)
			next, code := c.end(ctx, e.Txn, false, true)
			c.done(e, next, code == 0)
			if code == kerr.NotCoordinator.Code {
				c.forget(e)
			}
			continue
		}
		c.finish(ctx, e, e.Txn)
	}
}

// expire forgets ids idle past IDExpiration (marked busy by tick); one
// whose tombstone cannot be written is tried again at a later tick.
func (c *Coordinator) expire(ctx context.Context, expired []*entry) {
	for _, e := range expired {
		err := ctx.Err()
		if err == nil {
			err = c.cfg.Store.DeleteTxn(ctx, e.ID)
		}
		c.mu.Lock()
		e.markIdle()
		if err == nil && c.txns[e.ID] == e {
			delete(c.txns, e.ID)
			c.log.Info("transactional id expired", "txn", e.ID, "pid", e.ProducerID, "idle", time.Duration(c.now().UnixMilli()-e.UpdateMs)*time.Millisecond)
		}
		c.mu.Unlock()
	}
}

// Lookup is Describe for the produce path, which must also know whether
// the id was loaded with markers that a crash may have lost and that are
// still being written again (rewriting): until they are, a write of the
// producer's could land where a lost marker belongs.
func (c *Coordinator) Lookup(id string) (t Txn, ok, rewriting bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.txns[id]
	if e == nil || e.ProducerID < 0 {
		return Txn{}, false, false
	}
	t = e.Txn
	t.Partitions, t.Groups = slices.Clone(t.Partitions), slices.Clone(t.Groups)
	return t, true, e.rewriting
}

// Describe returns the state of each id it coordinates (ok false: unknown).
func (c *Coordinator) Describe(id string) (Txn, bool) {
	t, ok, _ := c.Lookup(id)
	return t, ok
}

// List returns the transactions in any of states (all when empty) whose
// producer id is one of pids (all when empty), by id.
func (c *Coordinator) List(states []State, pids []int64) []Txn {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Txn
	for _, e := range c.txns {
		if e.ProducerID < 0 ||
			(len(states) > 0 && !slices.Contains(states, e.State)) ||
			(len(pids) > 0 && !slices.Contains(pids, e.ProducerID)) {
			continue
		}
		out = append(out, e.Txn)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
