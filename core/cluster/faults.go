package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// NetFaults cuts the network between brokers, for tests of partitions (a broker isolated from
// the others). One NetFaults is shared by the nodes of a test cluster through Config.Faults; with
// it set, Raft runs over a NetworkTransport whose stream layer and Serf over a memberlist
// transport that both consult it. Without it (production) Raft uses raft.NewTCPTransport and Serf
// its own transport, untouched.
type NetFaults struct {
	mu       sync.Mutex
	owner    map[string]int32 // raft and serf addresses → broker id
	isolated map[int32]bool
	conns    map[int32]map[net.Conn]bool // open Raft connections per local broker, cut on Isolate
}

// NewNetFaults returns an injector with every link up.
func NewNetFaults() *NetFaults {
	return &NetFaults{owner: map[string]int32{}, isolated: map[int32]bool{}, conns: map[int32]map[net.Conn]bool{}}
}

var errCut = errors.New("network cut by fault injection")

// Isolate cuts every link to and from broker id: new dials fail, packets are dropped and open
// Raft connections on both sides are closed.
func (f *NetFaults) Isolate(id int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.isolated[id] = true
	for owner, cs := range f.conns {
		for c := range cs {
			if owner == id || f.peerOfLocked(c) == id {
				c.Close()
				delete(cs, c)
			}
		}
	}
}

// Heal restores broker id's links.
func (f *NetFaults) Heal(id int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.isolated, id)
}

func (f *NetFaults) register(addr string, id int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.owner[addr] = id
}

// peerOfLocked finds the broker at the other end of an outbound connection (-1 if unknown).
func (f *NetFaults) peerOfLocked(c net.Conn) int32 {
	if id, ok := f.owner[c.RemoteAddr().String()]; ok {
		return id
	}
	return -1
}

// blocked reports whether traffic from broker self to addr must be dropped.
func (f *NetFaults) blocked(self int32, addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.isolated[self] {
		return true
	}
	id, ok := f.owner[addr]
	return ok && id != self && f.isolated[id]
}

func (f *NetFaults) track(self int32, c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns[self] == nil {
		f.conns[self] = map[net.Conn]bool{}
	}
	f.conns[self][c] = true
}

// faultStream is a raft.StreamLayer over TCP that honours NetFaults.
type faultStream struct {
	net.Listener
	f    *NetFaults
	self int32
}

func (s *faultStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.f.blocked(s.self, string(addr)) {
		return nil, fmt.Errorf("dial %s: %w", addr, errCut)
	}
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	s.f.track(s.self, c)
	return c, nil
}

func (s *faultStream) Accept() (net.Conn, error) {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			return nil, err
		}
		// The dialling side already refuses to dial across a cut; only an isolated listener
		// must turn away connections itself.
		if s.f.blocked(s.self, "") {
			c.Close()
			continue
		}
		s.f.track(s.self, c)
		return c, nil
	}
}

func newFaultRaftTransport(f *NetFaults, self int32, bind string, logw io.Writer) (*raft.NetworkTransport, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raft listener on %s: %w", bind, err)
	}
	f.register(ln.Addr().String(), self)
	return raft.NewNetworkTransport(&faultStream{Listener: ln, f: f, self: self}, 3, 10*time.Second, logw), nil
}

// faultGossip is a memberlist transport that drops packets and refuses streams across a cut.
type faultGossip struct {
	*memberlist.NetTransport
	f       *NetFaults
	self    int32
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	wg      sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*faultGossip)(nil)

func newFaultGossip(f *NetFaults, self int32, host string, port int, logw io.Writer) (*faultGossip, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{host}, BindPort: port, Logger: log.New(logw, "", 0),
	})
	if err != nil {
		return nil, fmt.Errorf("gossip transport on %s:%d: %w", host, port, err)
	}
	f.register(net.JoinHostPort(host, strconv.Itoa(port)), self)
	g := &faultGossip{NetTransport: nt, f: f, self: self,
		packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), done: make(chan struct{})}
	g.wg.Go(g.filterPackets)
	g.wg.Go(g.filterStreams)
	return g, nil
}

func (g *faultGossip) filterPackets() {
	// A lost packet needs no cleanup, as on the wire.
	relayUncut(g.done, g.NetTransport.PacketCh(), g.packets,
		func(p *memberlist.Packet) bool { return g.f.blocked(g.self, p.From.String()) },
		func(*memberlist.Packet) {})
}

func (g *faultGossip) filterStreams() {
	relayUncut(g.done, g.NetTransport.StreamCh(), g.streams,
		func(net.Conn) bool { return g.f.blocked(g.self, "") },
		func(c net.Conn) { c.Close() })
}

// relayUncut passes what in delivers on to out until done is closed, except
// what cut says a network cut stops; drop disposes of a stopped item and of
// one still held when done closes.
func relayUncut[T any](done <-chan struct{}, in <-chan T, out chan<- T, cut func(T) bool, drop func(T)) {
	for {
		select {
		case <-done:
			return
		case v := <-in:
			if cut(v) {
				drop(v)
				continue
			}
			select {
			case out <- v:
			case <-done:
				drop(v)
				return
			}
		}
	}
}

func (g *faultGossip) PacketCh() <-chan *memberlist.Packet { return g.packets }
func (g *faultGossip) StreamCh() <-chan net.Conn           { return g.streams }

func (g *faultGossip) WriteTo(b []byte, addr string) (time.Time, error) {
	if g.f.blocked(g.self, addr) {
		return time.Now(), nil // lost on the wire, as UDP would be
	}
	return g.NetTransport.WriteTo(b, addr)
}

func (g *faultGossip) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return g.WriteTo(b, a.Addr)
}

func (g *faultGossip) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if g.f.blocked(g.self, addr) {
		return nil, fmt.Errorf("dial %s: %w", addr, errCut)
	}
	return g.NetTransport.DialTimeout(addr, timeout)
}

func (g *faultGossip) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return g.DialTimeout(a.Addr, timeout)
}

func (g *faultGossip) Shutdown() error {
	err := g.NetTransport.Shutdown()
	close(g.done)
	g.wg.Wait()
	return err
}

// Dial connects broker self to peer's address (its Kafka listener, for replica fetching) unless a
// cut is in place; Isolate of either side closes the connection, so one Isolate cuts a broker's
// replication as well as its Raft and Serf links.
func (f *NetFaults) Dial(ctx context.Context, self, peer int32, addr string) (net.Conn, error) {
	f.register(addr, peer)
	if f.blocked(self, addr) {
		return nil, fmt.Errorf("dial %s: %w", addr, errCut)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	f.track(self, c)
	return c, nil
}
