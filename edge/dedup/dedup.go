// Package dedup recognises QoS 1 re-sends of readings the edge already
// stored. MQTT QoS 1 is at-least-once: when the gateway dies after the fsync
// but before the PUBACK leaves, the device sends the reading again after
// reconnecting. A re-send carries the same per-device seq and the same device
// timestamp ts; a device that restarts numbering from 0 has a new clock, so
// (seq, ts) together tell a re-send from a new reading.
//
// The window keeps, per (stream, device) key, the last PerDevice (seq, ts)
// pairs seen, and at most MaxDevices keys (when full, an arbitrary key is
// forgotten to make room). A re-send older than the window, or of a forgotten
// key, is stored again: the window bounds memory, not correctness in every
// case. Readings without a device timestamp are never deduplicated (a reused
// seq alone cannot be told from a device restart).
package dedup

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
)

// Defaults for Config's zero fields.
const (
	DefaultPerDevice  = 64
	DefaultMaxDevices = 100_000
)

// Config bounds the window.
type Config struct {
	// PerDevice is how many recent (seq, ts) pairs are kept per key; it
	// should exceed the number of unacknowledged publishes a device may have
	// in flight (the broker's receive maximum).
	PerDevice int
	// MaxDevices bounds the number of keys kept.
	MaxDevices int
}

const shards = 16

// Window is safe for concurrent use.
type Window struct {
	per, maxPerShard int
	seed             maphash.Seed
	shards           [shards]shard
}

type shard struct {
	mu   sync.Mutex
	keys map[string]*ring
}

// ring holds a key's most recent entries; next is where the next one goes.
type ring struct {
	e    []entry
	next int
}

// entry is one (seq, ts); 24 bytes, as a gateway keeps PerDevice of them
// for every device.
type entry struct {
	seq uint64
	ts  int64
	// wait is nil for an unused entry and stored once the reading is;
	// while the first publish of this (seq, ts) is still being appended it
	// is that append's own pending, and a re-send arriving meanwhile waits
	// for its outcome rather than being acknowledged before the original is
	// durable.
	wait *pending
}

// pending is settled under the shard lock; done is made only when a
// re-send has to wait, so the common case allocates no channel.
type pending struct {
	done     chan struct{}
	finished bool
	ok       bool
}

// stored is the wait of every entry whose append succeeded: settled and
// ok, so the paths that find a settled pending treat it alike. Nothing
// writes to it.
var stored = &pending{finished: true, ok: true}

// New returns an empty window.
func New(cfg Config) *Window {
	if cfg.PerDevice <= 0 {
		cfg.PerDevice = DefaultPerDevice
	}
	if cfg.MaxDevices <= 0 {
		cfg.MaxDevices = DefaultMaxDevices
	}
	w := &Window{per: cfg.PerDevice, maxPerShard: max(1, (cfg.MaxDevices+shards-1)/shards), seed: maphash.MakeSeed()}
	for i := range w.shards {
		w.shards[i].keys = map[string]*ring{}
	}
	return w
}

// Key joins stream and device into a window key.
func Key(stream, device string) string { return stream + "\x00" + device }

func (w *Window) shard(key string) *shard {
	return &w.shards[maphash.String(w.seed, key)%shards]
}

// Claim is an in-progress first publish of a (seq, ts); the caller must call
// Done exactly once. The zero Claim (nothing claimed) ignores Done.
type Claim struct {
	s    *shard
	key  string
	wait *pending
}

// Done records whether the append succeeded. On failure the entry is
// removed, so a re-send is stored rather than acknowledged.
func (c Claim) Done(ok bool) {
	if c.wait == nil {
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if r := c.s.keys[c.key]; r != nil {
		for i := range r.e {
			if e := &r.e[i]; e.wait == c.wait {
				e.wait = stored
				if !ok {
					*e = entry{}
				}
			}
		}
	}
	c.wait.finished, c.wait.ok = true, ok
	if c.wait.done != nil {
		close(c.wait.done)
	}
}

// Begin checks (seq, ts) under key. If it was stored before, Begin returns
// dup = true (after waiting for the original's append if that is still in
// progress). Otherwise it records (seq, ts) as in progress and returns a
// Claim whose Done the caller calls after the append.
func (w *Window) Begin(ctx context.Context, key string, seq uint64, ts int64) (c Claim, dup bool, err error) {
	s := w.shard(key)
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		r := s.keys[key]
		if r != nil {
			if e := r.find(seq, ts); e != nil {
				wait := e.wait
				if wait.finished { // stored, or settled but its entry was not found to clear
					ok := wait.ok
					s.mu.Unlock()
					if ok {
						return Claim{}, true, nil
					}
					continue
				}
				if wait.done == nil {
					wait.done = make(chan struct{})
				}
				s.mu.Unlock()
				select {
				case <-wait.done:
				case <-ctx.Done():
					return Claim{}, false, fmt.Errorf("dedup: wait for the first copy: %w", ctx.Err())
				}
				s.mu.Lock()
				ok := wait.ok
				s.mu.Unlock()
				if ok {
					return Claim{}, true, nil
				}
				continue // the original failed; this copy takes its place
			}
		} else {
			r = s.add(w, key)
		}
		p := &pending{}
		r.put(entry{seq: seq, ts: ts, wait: p})
		s.mu.Unlock()
		return Claim{s: s, key: key, wait: p}, false, nil
	}
}

// Add records a stored (seq, ts) (start-up rebuild from the log tail).
func (w *Window) Add(key string, seq uint64, ts int64) {
	s := w.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.keys[key]
	if r == nil {
		r = s.add(w, key)
	} else if r.find(seq, ts) != nil {
		return
	}
	r.put(entry{seq: seq, ts: ts, wait: stored})
}

// Keys is the number of keys held.
func (w *Window) Keys() int {
	n := 0
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		n += len(s.keys)
		s.mu.Unlock()
	}
	return n
}

// add makes a ring for key, forgetting another key if the shard is full.
// mu held.
func (s *shard) add(w *Window, key string) *ring {
	if len(s.keys) >= w.maxPerShard {
		for k, r := range s.keys {
			if !r.busy() {
				delete(s.keys, k)
				break
			}
		}
	}
	r := &ring{e: make([]entry, w.per)}
	s.keys[key] = r
	return r
}

// find scans newest first: a re-send is almost always of a recent reading.
func (r *ring) find(seq uint64, ts int64) *entry {
	n := len(r.e)
	for i := 1; i <= n; i++ {
		e := &r.e[(r.next-i+n)%n]
		if e.wait != nil && e.seq == seq && e.ts == ts {
			return e
		}
	}
	return nil
}

func (r *ring) put(e entry) {
	r.e[r.next] = e
	r.next = (r.next + 1) % len(r.e)
}

// busy says whether an append is in progress for the key (its ring must
// stay so that Done and waiting re-sends find the entry).
func (r *ring) busy() bool {
	for i := range r.e {
		if w := r.e[i].wait; w != nil && w != stored {
			return true
		}
	}
	return false
}
