package ingest

import (
	"hash/maphash"
	"sync"
)

// resendWindow recognises MQTT re-sends of publishes that carry no
// sequence number: a QoS 1/2 client that did not get its PUBACK sends the
// same packet again with the DUP flag and the same packet id, in the same
// session (same client id). The window keeps, per client id, the last few
// (packet id, payload hash) stored; it lives in memory only, so a re-send
// after an edge restart is stored again (readings with a seq and time are
// deduplicated across restarts by package dedup instead).
type resendWindow struct {
	seed       maphash.Seed
	per, limit int
	mu         sync.Mutex
	clients    map[string]*resendRing
}

type resendRing struct {
	e    []resendKey
	next int
}

// resendKey identifies one stored publish of a client.
type resendKey struct {
	client string
	id     uint16
	hash   uint64
	set    bool
}

func newResendWindow(per, limit int) *resendWindow {
	return &resendWindow{seed: maphash.MakeSeed(), per: max(per, 8), limit: max(limit, 1), clients: map[string]*resendRing{}}
}

func (w *resendWindow) key(client string, id uint16, p []byte) resendKey {
	return resendKey{client: client, id: id, hash: maphash.Bytes(w.seed, p), set: true}
}

func (w *resendWindow) seen(k resendKey) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.clients[k.client]
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
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.clients[k.client]
	if r == nil {
		if len(w.clients) >= w.limit {
			for c := range w.clients { // forget an arbitrary client
				delete(w.clients, c)
				break
			}
		}
		r = &resendRing{e: make([]resendKey, 0, 4)}
		w.clients[k.client] = r
	}
	k.client = "" // the map key holds it
	if len(r.e) < w.per {
		r.e = append(r.e, k)
		return
	}
	r.e[r.next] = k
	r.next = (r.next + 1) % w.per
}

// forget drops a client whose session ended.
func (w *resendWindow) forget(client string) {
	w.mu.Lock()
	delete(w.clients, client)
	w.mu.Unlock()
}
