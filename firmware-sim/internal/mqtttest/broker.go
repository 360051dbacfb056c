// Package mqtttest runs a real mochi-mqtt broker on loopback for
// firmware-sim's tests and records what it accepts, so device and fleet
// behaviour is checked against an actual MQTT server, not a mock.
package mqtttest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Publish is one PUBLISH the broker accepted.
type Publish struct {
	Client  string
	Topic   string
	Payload []byte
	QoS     byte
}

// Options configure a test broker.
type Options struct {
	// Addr to listen on; "127.0.0.1:0" picks a free port.
	Addr string
	// Logins, when set, are the only accepted username/password pairs.
	Logins map[string]string
	// TLS, when set, makes the listener speak TLS.
	TLS *tls.Config
	// Refuse, when set, is asked about every publish; true refuses it
	// without an acknowledgement, as an edge does when it cannot store it.
	Refuse func(Publish) bool
	// CutAfter, when set, is asked about every accepted publish; true
	// closes the client's connection after storing it but before the
	// acknowledgement, the window in which at-least-once duplicates are born.
	CutAfter func(Publish) bool
}

// Broker is a running mochi server.
type Broker struct {
	server    *mqtt.Server
	addr      string
	closeOnce sync.Once
	closeErr  error

	mu        sync.Mutex
	publishes []Publish
	connects  int
}

// Start starts a broker; Close stops it.
func Start(o Options) (*Broker, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	s := mqtt.New(&mqtt.Options{
		InlineClient: false,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	b := &Broker{server: s}
	if err := s.AddHook(&hook{b: b, logins: o.Logins, refuse: o.Refuse, cut: o.CutAfter}, nil); err != nil {
		return nil, fmt.Errorf("add hook: %w", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: o.Addr, TLSConfig: o.TLS})
	if err := s.AddListener(l); err != nil {
		return nil, fmt.Errorf("listen %s: %w", o.Addr, err)
	}
	b.addr = l.Address()
	if err := s.Serve(); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return b, nil
}

// Addr is the listener's host:port.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker, dropping every connection. It may be called twice.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.server.Close() })
	return b.closeErr
}

// Publishes returns a copy of everything accepted so far.
func (b *Broker) Publishes() []Publish {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Publish(nil), b.publishes...)
}

// Count is how many publishes were accepted so far.
func (b *Broker) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.publishes)
}

// Connects is how many clients were let in so far.
func (b *Broker) Connects() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connects
}

type hook struct {
	mqtt.HookBase
	b      *Broker
	logins map[string]string
	refuse func(Publish) bool
	cut    func(Publish) bool
}

func (h *hook) ID() string { return "record" }

func (h *hook) Provides(x byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish}, []byte{x})
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if h.logins != nil {
		pw, ok := h.logins[string(pk.Connect.Username)]
		if !ok || pw != string(pk.Connect.Password) {
			return false
		}
	}
	h.b.mu.Lock()
	h.b.connects++
	h.b.mu.Unlock()
	return true
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool { return true }

// OnPublish runs before the PUBACK is written, as the edge's does, so a
// recorded publish is one the client may have seen acknowledged.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	p := Publish{Client: cl.ID, Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...), QoS: pk.FixedHeader.Qos}
	if h.refuse != nil && h.refuse(p) {
		return pk, packets.ErrRejectPacket
	}
	h.b.mu.Lock()
	h.b.publishes = append(h.b.publishes, p)
	h.b.mu.Unlock()
	if h.cut != nil && h.cut(p) {
		cl.Stop(errors.New("mqtttest: connection cut before the acknowledgement"))
	}
	return pk, nil
}
