package ingest

import (
	"hash/maphash"
	"sync"
)

// resendWindow recognises MQTT re-sends of publishes that carry no
// sequence number: a QoS 1/2 client that did not get its PUBACK sends the
// same packet again with the DUP flag and the same packet id, in the same
// session (same client id). The window keeps, per client id, the last few
// (packet id, payload hash) stored whose acknowledgement has not been
// written yet: once it has (PUBACK, or PUBCOMP for QoS 2), the client may
// use the id again and MQTT makes any publish with it a new one
// (MQTT-4.3.2-2), even a DUP with the same payload, whose first copy may
// have been lost. The window lives in memory only, so a re-send
// after an edge restart is stored again (readings with a seq and time are
// deduplicated across restarts by package dedup instead). It is sharded by
// client id: every QoS 1/2 publish without a seq is remembered, from the
// partition writers' goroutines.
type resendWindow struct {
	seed       maphash.Seed
	per, limit int
	shards     [resendShards]resendShard
}

const resendShards = 16

type resendShard struct {
	mu      sync.Mutex
	clients map[string]*resendRing
}

type resendRing struct {
	e    []resendEntry
	next int
}

type resendEntry struct {
	id   uint16
	hash uint64
}

// resendKey identifies one stored publish of a client.
type resendKey struct {
	client string
	id     uint16
	shard  uint8
	set    bool
	hash   uint64
}

func newResendWindow(per, limit int) *resendWindow {
	// A client has at most receive-maximum publishes unacknowledged, so a
	// ring of per (default 64) covers its possible re-sends; at most
	// limit clients (up to 16 bytes per entry) are remembered.
	w := &resendWindow{seed: maphash.MakeSeed(), per: min(max(per, 8), 256), limit: max(limit/resendShards, 1)}
	for i := range w.shards {
		w.shards[i].clients = map[string]*resendRing{}
	}
	return w
}

func (w *resendWindow) key(client string, id uint16, p []byte) resendKey {
	return resendKey{client: client, id: id, hash: maphash.Bytes(w.seed, p),
		shard: uint8(maphash.String(w.seed, client) % resendShards), set: true}
}

func (w *resendWindow) seen(k resendKey) bool {
	s := &w.shards[k.shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.clients[k.client]
	if r == nil {
		return false
	}
	for _, e := range r.e {
		if e.id == k.id && e.hash == k.hash {
			return true
		}
	}
	return false
}

func (w *resendWindow) add(k resendKey) {
	s := &w.shards[k.shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.clients[k.client]
	if r == nil {
		if len(s.clients) >= w.limit {
			for c := range s.clients { // forget an arbitrary client
				delete(s.clients, c)
				break
			}
		}
		r = &resendRing{e: make([]resendEntry, 0, 4)}
		s.clients[k.client] = r
	}
	e := resendEntry{id: k.id, hash: k.hash}
	if len(r.e) < w.per {
		r.e = append(r.e, e)
		return
	}
	r.e[r.next] = e
	r.next = (r.next + 1) % w.per
}

// drop forgets client's stored publish with packet id id, whose
// acknowledgement was written (see resendWindow).
func (w *resendWindow) drop(client string, id uint16) {
	s := &w.shards[maphash.String(w.seed, client)%resendShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.clients[client]
	if r == nil {
		return
	}
	for i := range r.e {
		if r.e[i].id == id {
			r.e[i] = resendEntry{} // packet id 0 is never used
		}
	}
}

// forget drops a client whose session ended.
func (w *resendWindow) forget(client string) {
	s := &w.shards[maphash.String(w.seed, client)%resendShards]
	s.mu.Lock()
	delete(s.clients, client)
	s.mu.Unlock()
}
