package txns

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tributary-io/tributary/internal/testkit"
)

// broker is the coordinator's world in these tests: a saved-state map and
// a marker log, either of which can be made to fail (the faults a real
// broker meets: a lost leadership, a partition leader that is down).
type broker struct {
	mu         sync.Mutex
	saved      map[string]Txn
	markers    []string
	failSave   error
	failMarker error
	nextPID    int64
	// gate, when set, holds every marker write until it is closed (or the
	// write's context ends).
	gate chan struct{}
}

func (b *broker) SaveTxn(_ context.Context, t Txn, _ bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failSave != nil {
		return b.failSave
	}
	b.saved[t.ID] = t
	return nil
}

func (b *broker) DeleteTxn(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failSave != nil {
		return b.failSave
	}
	delete(b.saved, id)
	return nil
}

func (b *broker) WriteMarkers(ctx context.Context, pid int64, epoch int16, commit bool, parts []TopicPartition, groups []string) error {
	b.mu.Lock()
	gate := b.gate
	b.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failMarker != nil {
		return b.failMarker
	}
	what := "abort"
	if commit {
		what = "commit"
	}
	for _, p := range parts {
		b.markers = append(b.markers, what+" "+p.Topic)
	}
	for _, g := range groups {
		b.markers = append(b.markers, what+" group "+g)
	}
	return nil
}

func (b *broker) set(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f()
}

func (b *broker) state(id string) Txn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.saved[id]
}

func newTestCoordinator(t *testing.T) (*Coordinator, *broker) {
	b := &broker{saved: map[string]Txn{}}
	c := NewCoordinator(Config{Store: b, Markers: b, TickInterval: 10 * time.Millisecond,
		NewProducerID: func() (int64, error) {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.nextPID++
			return b.nextPID, nil
		}}, nil)
	t.Cleanup(c.Close)
	return c, b
}

// begin gives id a producer id and opens a transaction on parts that
// times out after timeoutMs, failing the test if either is refused.
func begin(t *testing.T, c *Coordinator, id string, timeoutMs int32, parts ...TopicPartition) {
	t.Helper()
	ctx := context.Background()
	r := c.InitProducerID(ctx, id, timeoutMs, -1, -1)
	if r.Code != 0 {
		t.Fatalf("init %s: %v", id, kerr.ErrorForCode(r.Code))
	}
	if code := c.Add(ctx, id, r.ProducerID, r.Epoch, parts, nil); code != 0 {
		t.Fatalf("add to %s: %v", id, kerr.ErrorForCode(code))
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, what, cond)
}

func TestLifecycleAndFencing(t *testing.T) {
	t.Parallel()
	c, b := newTestCoordinator(t)
	ctx := context.Background()
	r := c.InitProducerID(ctx, "a", 60000, -1, -1)
	if r.Code != 0 || r.ProducerID != 1 || r.Epoch != 0 {
		t.Fatalf("init: %+v", r)
	}
	tp := []TopicPartition{{Topic: "t", Partition: 0}}
	if code := c.Add(ctx, "a", 1, 0, tp, []string{"g"}); code != 0 {
		t.Fatalf("add: %d", code)
	}
	if got := b.state("a"); got.State != Ongoing || len(got.Partitions) != 1 || len(got.Groups) != 1 {
		t.Fatalf("saved after add: %+v", got)
	}
	if code := c.EndTxn(ctx, "a", 1, 0, true); code != 0 {
		t.Fatalf("commit: %d", code)
	}
	if code := c.EndTxn(ctx, "a", 1, 0, true); code != 0 {
		t.Fatalf("retried commit: %d", code)
	}
	if code := c.EndTxn(ctx, "a", 1, 0, false); code != kerr.InvalidTxnState.Code {
		t.Fatalf("abort after commit: %d", code)
	}
	if got := b.state("a"); got.State != CompleteCommit || len(b.markers) != 2 {
		t.Fatalf("after commit: %+v, markers %v", got, b.markers)
	}
	// A new instance: same producer id, next epoch; the old one is fenced.
	if code := c.Add(ctx, "a", 1, 0, tp, nil); code != 0 {
		t.Fatal(code)
	}
	r = c.InitProducerID(ctx, "a", 60000, -1, -1)
	if r.Code != 0 || r.ProducerID != 1 || r.Epoch != 1 {
		t.Fatalf("second instance: %+v (its ongoing transaction is aborted at epoch 1, which it gets)", r)
	}
	if last := b.markers[len(b.markers)-1]; last != "abort t" {
		t.Fatalf("open transaction of the fenced instance: markers %v", b.markers)
	}
	for _, code := range []int16{c.Add(ctx, "a", 1, 0, tp, nil), c.EndTxn(ctx, "a", 1, 0, true)} {
		if code != kerr.ProducerFenced.Code {
			t.Fatalf("fenced instance: %d", code)
		}
	}
	if code := c.Add(ctx, "a", 99, 1, tp, nil); code != kerr.InvalidProducerIDMapping.Code {
		t.Fatalf("wrong producer id: %d", code)
	}
	if r := c.InitProducerID(ctx, "a", 0, -1, -1); r.Code != kerr.InvalidTransactionTimeout.Code {
		t.Fatalf("zero timeout: %+v", r)
	}
}

// The decision is saved before markers; markers that fail are retried
// until written, and the transaction is busy meanwhile.
func TestMarkersRetried(t *testing.T) {
	t.Parallel()
	c, b := newTestCoordinator(t)
	ctx := context.Background()
	begin(t, c, "m", 60000, TopicPartition{Topic: "t"})
	b.set(func() { b.failMarker = errors.New("leader down") })
	if code := c.EndTxn(ctx, "m", 1, 0, true); code != 0 {
		t.Fatalf("commit with markers failing: %d (the decision is saved)", code)
	}
	if got := b.state("m"); got.State != PrepareCommit {
		t.Fatalf("saved: %+v", got)
	}
	if code := c.Add(ctx, "m", 1, 0, nil, nil); code != kerr.ConcurrentTransactions.Code {
		t.Fatalf("add while committing: %d", code)
	}
	b.set(func() { b.failMarker = nil })
	waitFor(t, "commit completed", func() bool { return b.state("m").State == CompleteCommit })
}

// A transaction past its timeout is aborted with a new epoch; one whose
// state cannot be saved is not acted on.
func TestTimeoutAndSaveFailure(t *testing.T) {
	t.Parallel()
	c, b := newTestCoordinator(t)
	ctx := context.Background()
	begin(t, c, "slow", 50, TopicPartition{Topic: "t"})
	waitFor(t, "timed-out transaction aborted", func() bool {
		s := b.state("slow")
		return s.State == CompleteAbort && s.Epoch == 1 && s.Fenced
	})
	if code := c.EndTxn(ctx, "slow", 1, 0, true); code != kerr.ProducerFenced.Code {
		t.Fatalf("commit after the timeout: %d", code)
	}
	if r := c.InitProducerID(ctx, "slow", 60000, 1, 1); r.Code != 0 || r.Epoch != 1 {
		t.Fatalf("init after the fencing abort takes its epoch: %+v", r)
	}

	b.set(func() { b.failSave = ErrNotCoordinator })
	if code := c.Add(ctx, "slow", 1, 1, []TopicPartition{{Topic: "t"}}, nil); code != kerr.NotCoordinator.Code {
		t.Fatalf("add when saving fails: %d", code)
	}
	if d, _ := c.Describe("slow"); d.State != Empty {
		t.Fatalf("state changed although not saved: %+v", d)
	}
}

// Loaded state (a coordinator move) finishes Prepare* transactions.
func TestLoadFinishesPrepared(t *testing.T) {
	t.Parallel()
	c, b := newTestCoordinator(t)
	c.Load([]Txn{{ID: "p", ProducerID: 7, Epoch: 3, State: PrepareAbort, TimeoutMs: 60000, Partitions: []TopicPartition{{Topic: "x"}}}})
	waitFor(t, "loaded abort completed", func() bool { return b.state("p").State == CompleteAbort })
	if l := c.List([]State{CompleteAbort}, []int64{7}); len(l) != 1 || l[0].ID != "p" {
		t.Fatalf("list: %+v", l)
	}
	c.Unload(func(string) bool { return false })
	if _, ok := c.Describe("p"); ok {
		t.Fatal("unloaded transaction still described")
	}
}

// EndTxn answers once the decision is saved; the producer's next request
// waits for the markers instead of being told CONCURRENT_TRANSACTIONS.
func TestEndTxnAnswersBeforeMarkers(t *testing.T) {
	t.Parallel()
	c, b := newTestCoordinator(t)
	ctx := context.Background()
	tp := []TopicPartition{{Topic: "t"}}
	begin(t, c, "e", 60000, tp...)
	gate := make(chan struct{})
	b.set(func() { b.gate = gate })
	if code := c.EndTxn(ctx, "e", 1, 0, true); code != 0 {
		t.Fatalf("commit: %d", code)
	}
	if got := b.state("e"); got.State != PrepareCommit || len(b.markers) != 0 {
		t.Fatalf("answered before markers: saved %v, markers %v", got.State, b.markers)
	}
	added := make(chan int16, 1)
	go func() { added <- c.Add(ctx, "e", 1, 0, tp, nil) }()
	select {
	case code := <-added:
		t.Fatalf("add answered %d while the markers were held", code)
	case <-time.After(20 * time.Millisecond):
	}
	close(gate)
	if code := <-added; code != 0 {
		t.Fatalf("add after the markers: %d", code)
	}
	if got := b.state("e"); got.State != Ongoing || b.markers[0] != "commit t" {
		t.Fatalf("next transaction: %+v, markers %v", got, b.markers)
	}
}

// A request waits at most BusyWait, then gets CONCURRENT_TRANSACTIONS; Close
// cuts a held completion short and leaves it Prepare* for the next owner.
func TestBusyWaitBoundAndClose(t *testing.T) {
	t.Parallel()
	b := &broker{saved: map[string]Txn{}, gate: make(chan struct{})}
	c := NewCoordinator(Config{Store: b, Markers: b, BusyWait: 30 * time.Millisecond,
		NewProducerID: func() (int64, error) { return 1, nil }}, nil)
	ctx := context.Background()
	begin(t, c, "w", 60000, TopicPartition{Topic: "t"})
	if code := c.EndTxn(ctx, "w", 1, 0, false); code != 0 {
		t.Fatalf("abort: %d", code)
	}
	if code := c.Add(ctx, "w", 1, 0, nil, nil); code != kerr.ConcurrentTransactions.Code {
		t.Fatalf("add while the markers hang: %d", code)
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop a hanging completion")
	}
	if got := b.state("w"); got.State != PrepareAbort {
		t.Fatalf("state after close: %v", got.State)
	}
}

// An id idle past IDExpiration with nothing open is forgotten (and its
// state deleted); one with a transaction open is not, whatever its age.
func TestIdleIDsExpire(t *testing.T) {
	t.Parallel()
	b := &broker{saved: map[string]Txn{}}
	var pid int64
	c := NewCoordinator(Config{Store: b, Markers: b, TickInterval: 5 * time.Millisecond,
		IDExpiration: 50 * time.Millisecond, MaxTimeout: time.Hour,
		NewProducerID: func() (int64, error) { pid++; return pid, nil }}, nil)
	t.Cleanup(c.Close)
	ctx := context.Background()
	c.InitProducerID(ctx, "idle", 60000, -1, -1)
	begin(t, c, "open", 3_600_000, TopicPartition{Topic: "t"})
	waitFor(t, "idle id expired", func() bool {
		_, ok := c.Describe("idle")
		return !ok
	})
	if _, ok := b.saved["idle"]; ok {
		t.Fatal("expired id still saved")
	}
	if d, ok := c.Describe("open"); !ok || d.State != Ongoing {
		t.Fatalf("open transaction: %+v %v", d, ok)
	}
	// An expired id starts afresh with a new producer id.
	if r := c.InitProducerID(ctx, "idle", 60000, -1, -1); r.Code != 0 || r.ProducerID != 3 || r.Epoch != 0 {
		t.Fatalf("init after expiry: %+v", r)
	}
}

// deferredBroker is a broker whose markers are written at once but made
// durable only when synced is closed: a DeferredMarkers. The n-th marker
// written lands at offset 10*n.
type deferredBroker struct {
	*broker
	synced    chan struct{}
	rewritten chan Ended
}

func (d *deferredBroker) WriteMarkersDeferred(ctx context.Context, pid int64, epoch int16, commit bool, parts []TopicPartition, groups []string) ([]Mark, func(context.Context) error, error) {
	if err := d.WriteMarkers(ctx, pid, epoch, commit, parts, groups); err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	n := len(d.markers)
	d.mu.Unlock()
	var marks []Mark
	for _, p := range parts {
		marks = append(marks, Mark{Topic: p.Topic, Partition: p.Partition, Offset: int64(10 * n)})
	}
	return marks, func(ctx context.Context) error {
		select {
		case <-d.synced:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil
}

func (d *deferredBroker) RewriteMarkers(ctx context.Context, e Ended) error {
	select {
	case d.rewritten <- e:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newDeferredCoordinator starts a coordinator with cfg over a new
// deferredBroker (its store and markers), ticking every 10 ms and giving
// producer id 7.
func newDeferredCoordinator(t *testing.T, cfg Config) (*Coordinator, *deferredBroker) {
	d := &deferredBroker{broker: &broker{saved: map[string]Txn{}}, synced: make(chan struct{}), rewritten: make(chan Ended)}
	cfg.Store, cfg.Markers, cfg.TickInterval = d, d, 10*time.Millisecond
	cfg.NewProducerID = func() (int64, error) { return 7, nil }
	c := NewCoordinator(cfg, nil)
	t.Cleanup(c.Close)
	return c, d
}

func (d *deferredBroker) markerCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.markers)
}

// With DeferredMarkers the producer's next transaction begins while the
// last one's markers are still being made durable; every state saved
// meanwhile carries that end (so a crash cannot lose the markers), and
// once they are durable the next save no longer does. A second end waits
// for the first to be durable, so the saved end is never one of two. A
// coordinator that loads a state with an end rewrites the markers, saves
// the state without the end, and only then serves the id.
func TestDeferredMarkerDurability(t *testing.T) {
	t.Parallel()
	c, d := newDeferredCoordinator(t, Config{BusyWait: 5 * time.Second})
	ctx := context.Background()
	tp := []TopicPartition{{Topic: "t", Partition: 2}}
	begin(t, c, "d", 60000, tp...)
	// end ends the open transaction, the n-th, and waits until its markers
	// are written.
	end := func(n int, commit bool) {
		t.Helper()
		if code := c.EndTxn(ctx, "d", 7, 0, commit); code != 0 {
			t.Fatalf("end %d (commit %v): %d", n, commit, code)
		}
		waitFor(t, fmt.Sprintf("end %d's markers written", n), func() bool { return d.markerCount() == n })
	}
	end(1, true)
	// The markers are written; their durability is held (never released
	// before the Add below). An Add that waited for it would be answered
	// CONCURRENT_TRANSACTIONS after BusyWait.
	if code := c.Add(ctx, "d", 7, 0, tp, nil); code != 0 {
		t.Fatalf("next transaction while the markers are not durable: %d", code)
	}
	got := d.state("d")
	if got.State != Ongoing || len(got.Unsynced) != 1 || !got.Unsynced[0].Commit || got.Unsynced[0].ProducerID != 7 ||
		len(got.Unsynced[0].Marks) != 1 || got.Unsynced[0].Marks[0] != (Mark{Topic: "t", Partition: 2, Offset: 10}) {
		t.Fatalf("state saved while the markers are not durable: %+v (unsynced %+v)", got, got.Unsynced)
	}
	// A second end while the first is still unsynced: both are kept,
	// oldest first, in what is saved until each is durable.
	end(2, false)
	if code := c.Add(ctx, "d", 7, 0, tp, nil); code != 0 {
		t.Fatalf("third transaction: %d", code)
	}
	two := d.state("d")
	if len(two.Unsynced) != 2 || two.Unsynced[0].Marks[0].Offset != 10 || two.Unsynced[1].Marks[0].Offset != 20 || two.Unsynced[1].Commit {
		t.Fatalf("saved with two ends unsynced: %+v", two.Unsynced)
	}
	end(3, false)
	close(d.synced)
	// All durable: the last one's Complete* is saved, with no end.
	waitFor(t, "ends completed", func() bool {
		s := d.state("d")
		return s.State == CompleteAbort && s.Unsynced == nil
	})

	// A new coordinator loads the state as saved mid-way: it rewrites the
	// markers, saves the state without the end, and the id waits for that.
	c2 := NewCoordinator(Config{Store: d, Markers: d, BusyWait: 5 * time.Second,
		NewProducerID: func() (int64, error) { return 7, nil }}, nil)
	t.Cleanup(c2.Close)
	d.set(func() { d.saved["d"] = got })
	c2.Load([]Txn{got})
	added := make(chan int16, 1)
	go func() { added <- c2.Add(ctx, "d", 7, 0, []TopicPartition{{Topic: "u"}}, nil) }()
	select {
	case code := <-added:
		t.Fatalf("add answered %d before the lost markers were rewritten", code)
	case <-time.After(20 * time.Millisecond):
	}
	if e := <-d.rewritten; e.ProducerID != 7 || !e.Commit || len(e.Marks) != 1 || e.Marks[0].Offset != 10 {
		t.Fatalf("rewrote %+v", e)
	}
	if code := <-added; code != 0 {
		t.Fatalf("add after the rewrite: %d", code)
	}
	if s := d.state("d"); s.Unsynced != nil || s.State != Ongoing || len(s.Partitions) != 2 {
		t.Fatalf("state after the rewrite and the add: %+v (unsynced %+v)", s, s.Unsynced)
	}
	// Two ends are rewritten oldest first, and the state is saved
	// without them before the id is served.
	c3 := NewCoordinator(Config{Store: d, Markers: d, NewProducerID: func() (int64, error) { return 7, nil }}, nil)
	t.Cleanup(c3.Close)
	d.set(func() { d.saved["d"] = two })
	c3.Load([]Txn{two})
	for i, want := range []int64{10, 20} {
		if e := <-d.rewritten; e.Marks[0].Offset != want {
			t.Fatalf("rewrite %d: %+v, want the mark at %d", i, e, want)
		}
	}
	waitFor(t, "state saved without the ends", func() bool {
		s := d.state("d")
		return s.Unsynced == nil && s.State == Ongoing
	})
}

// A state log partition that moves away while a loaded id's lost markers
// are still being rewritten is let go: the rewrite stops, and the id is
// no longer held here (the new coordinator loads and rewrites it).
func TestUnloadStopsRewrite(t *testing.T) {
	t.Parallel()
	// Nobody takes from rewritten: every rewrite runs into MarkerTimeout.
	c, _ := newDeferredCoordinator(t, Config{MarkerTimeout: 20 * time.Millisecond})
	lost := Txn{ID: "m", ProducerID: 7, State: CompleteCommit, TimeoutMs: 60000,
		Unsynced: []Ended{{ProducerID: 7, Commit: true, Marks: []Mark{{Topic: "t", Offset: 10}}}}}
	c.Load([]Txn{lost})
	if _, ok, rewriting := c.Lookup("m"); !ok || !rewriting {
		t.Fatalf("loaded with a lost marker: ok %v, rewriting %v", ok, rewriting)
	}
	c.Unload(func(string) bool { return false })
	waitFor(t, "the moved id let go", func() bool {
		_, ok, _ := c.Lookup("m")
		return !ok
	})
	// Moved back later, with the ends rewritten by the other broker: the
	// id is served from the loaded state.
	back := lost
	back.Unsynced = nil
	c.Load([]Txn{back})
	if got, ok, rewriting := c.Lookup("m"); !ok || rewriting || got.State != CompleteCommit {
		t.Fatalf("loaded again: %+v ok %v rewriting %v", got, ok, rewriting)
	}
}
