package device

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tributary-io/tributary/firmware-sim/reading"
	"github.com/tributary-io/tributary/firmware-sim/summary"
)

// BadTraffic sets the share of ticks that publish something the edge should
// refuse or dead-letter instead of a reading. Bad publishes never carry a
// seq, so they are never expected downstream.
type BadTraffic struct {
	Malformed     float64 // undecodable payloads (truncated or garbage bytes)
	Oversized     float64 // valid but oversized payloads
	WrongTopic    float64 // valid-looking payloads on a topic outside the schema
	OversizeBytes int     // size of oversized payloads
	// WrongTopicName is the topic of wrong-topic publishes; "{device}" and
	// "{stream}" are replaced.
	WrongTopicName string
}

// Config describes one device.
type Config struct {
	ID       string
	Broker   string // tcp://host:port, ssl://host:port
	Stream   string
	Kind     string // last topic level
	Encoding reading.Encoding
	QoS      byte
	Rate     float64 // readings per second
	Jitter   float64 // 0..1: each interval varies by up to this fraction
	FirstSeq uint64
	Count    uint64 // readings to generate; 0 means until stopped
	// QueueSize bounds readings waiting while offline (drop-oldest).
	QueueSize int
	// Inflight bounds publishes awaiting acknowledgement.
	Inflight       int
	Username       string
	Password       string
	TLS            *tls.Config
	MinBackoff     time.Duration
	MaxBackoff     time.Duration
	ConnectTimeout time.Duration
	// AckTimeout is how long a QoS 1 publish may wait for its PUBACK before
	// the device gives up on the connection and reconnects (MQTT 3.1.1 only
	// resends on a new connection). A broker that refuses a publish by not
	// acknowledging it would otherwise stall the window forever.
	AckTimeout time.Duration
	Bad        BadTraffic
	Rand       *rand.Rand // the device's own source; not shared
	Logger     *slog.Logger
}

// Stats are live counters, read by the fleet's progress line while the
// device runs.
type Stats struct {
	Connected atomic.Bool
	Generated atomic.Uint64
	Sent      atomic.Uint64
	Acked     atomic.Uint64
	Dropped   atomic.Uint64
	Queued    atomic.Int64
}

// Device is one simulated sensor with its own MQTT connection.
type Device struct {
	cfg    Config
	log    *slog.Logger
	sensor *Sensor
	Stats  Stats

	// Owned by Run's goroutine.
	sum      summary.Device
	queue    *queue
	inflight []flight
	client   mqtt.Client
	lost     chan mqtt.Client
	done     chan struct{}
	nextSeq  uint64
	genDone  bool
	backoff  time.Duration
	retry    *time.Timer // fires the next connect attempt
	wrongTop string
}

type flight struct {
	it    item
	token mqtt.Token
	at    time.Time
}

// New prepares a device; Run starts it.
func New(cfg Config) *Device {
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 2))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Kind == "" {
		cfg.Kind = "reading"
	}
	if cfg.Inflight <= 0 {
		cfg.Inflight = 32
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1000
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(10*time.Second, cfg.MinBackoff)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 30 * time.Second
	}
	if cfg.Bad.OversizeBytes <= 0 {
		cfg.Bad.OversizeBytes = 1 << 20
	}
	if cfg.Bad.WrongTopicName == "" {
		cfg.Bad.WrongTopicName = "{stream}"
	}
	d := &Device{
		cfg:     cfg,
		log:     cfg.Logger.With("device", cfg.ID),
		sensor:  NewSensor(cfg.Rand),
		queue:   newQueue(cfg.QueueSize),
		lost:    make(chan mqtt.Client),
		done:    make(chan struct{}),
		nextSeq: cfg.FirstSeq,
		backoff: cfg.MinBackoff,
		sum: summary.Device{ID: cfg.ID, FirstSeq: cfg.FirstSeq, NextSeq: cfg.FirstSeq,
			LastSentSeq: -1, LastAckedSeq: -1},
	}
	d.wrongTop = strings.NewReplacer("{device}", cfg.ID, "{stream}", cfg.Stream).Replace(cfg.Bad.WrongTopicName)
	return d
}

// Topic is where the device publishes readings.
func (d *Device) Topic() string { return d.cfg.Stream + "/" + d.cfg.ID + "/" + d.cfg.Kind }

// Run generates and publishes readings until Count is reached or stop is
// closed, then drains its queue and in-flight publishes and returns the
// device's account. Cancelling ctx abandons whatever is still pending (it
// is reported as dropped or unacknowledged, never as delivered).
func (d *Device) Run(ctx context.Context, stop <-chan struct{}) summary.Device {
	defer close(d.done)
	r := d.cfg.Rand
	interval := time.Duration(float64(time.Second) / max(d.cfg.Rate, 1e-3))
	// A random phase spreads a fleet's publishes over the interval.
	tick := time.NewTimer(time.Duration(r.Float64() * float64(interval)))
	defer tick.Stop()
	d.retry = time.NewTimer(0) // connect at once
	defer d.retry.Stop()
	ackCheck := time.NewTicker(min(max(d.cfg.AckTimeout/4, 10*time.Millisecond), time.Second))
	defer ackCheck.Stop()
	var connecting mqtt.Token // non-nil while a connect is under way
	var connectingClient mqtt.Client

	for {
		if d.genDone && d.queue.len() == 0 && len(d.inflight) == 0 {
			break
		}
		var connDone, headDone <-chan struct{}
		if connecting != nil {
			connDone = connecting.Done()
		}
		if len(d.inflight) > 0 {
			headDone = d.inflight[0].token.Done()
		}
		tickC := tick.C
		if d.genDone {
			tickC = nil
		}
		select {
		case <-ctx.Done():
			if connecting != nil {
				// Do not leave a half-made connection behind.
				connecting.WaitTimeout(time.Second)
				connectingClient.Disconnect(0)
			}
			d.finish(0)
			return d.sum
		case <-stop:
			d.genDone = true
			stop = nil
		case <-tickC:
			d.generate()
			j := 1 + d.cfg.Jitter*(2*r.Float64()-1)
			tick.Reset(time.Duration(float64(interval) * j))
		case <-d.retry.C:
			connectingClient = d.newClient()
			connecting = connectingClient.Connect()
		case <-connDone:
			if err := connecting.Error(); err != nil {
				d.log.Debug("connect failed", "err", err, "retry_in", d.backoff)
				d.retry.Reset(d.nextBackoff())
			} else {
				d.client = connectingClient
				d.sum.Connects++
				d.Stats.Connected.Store(true)
				d.backoff = d.cfg.MinBackoff
			}
			connecting, connectingClient = nil, nil
		case c := <-d.lost:
			if c == connectingClient {
				// Lost before its connect was settled: settle it now.
				connecting.Wait()
				if connecting.Error() == nil {
					d.sum.Connects++
				}
				connecting, connectingClient = nil, nil
				d.retry.Reset(d.nextBackoff())
				continue
			}
			if c != d.client {
				continue // a stale client's late report
			}
			d.connectionLost()
			d.retry.Reset(d.nextBackoff())
		case <-headDone:
			d.reapCompleted()
		case now := <-ackCheck.C:
			if d.client != nil && len(d.inflight) > 0 && now.Sub(d.inflight[0].at) > d.cfg.AckTimeout {
				d.log.Warn("publish not acknowledged in time; reconnecting", "seq", d.inflight[0].it.seq, "timeout", d.cfg.AckTimeout)
				d.reconnect()
			}
		}
		d.pump()
	}
	d.finish(250)
	return d.sum
}

// nextBackoff returns the wait before the next connect and doubles it, with
// ±20% jitter so a fleet does not reconnect in lockstep.
func (d *Device) nextBackoff() time.Duration {
	b := d.backoff
	d.backoff = min(d.backoff*2, d.cfg.MaxBackoff)
	return time.Duration(float64(b) * (0.8 + 0.4*d.cfg.Rand.Float64()))
}

func (d *Device) newClient() mqtt.Client {
	o := mqtt.NewClientOptions().
		AddBroker(d.cfg.Broker).
		SetClientID(d.cfg.ID).
		// The device keeps its own queue and resends what failed, so the
		// client must neither reconnect nor replay a session by itself.
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(d.cfg.ConnectTimeout).
		SetKeepAlive(30 * time.Second).
		// Publish blocks while paho's outbound queue is stuck on a dead
		// connection (30 s by default); keep that stall short.
		SetWriteTimeout(2 * time.Second).
		SetPingTimeout(10 * time.Second).
		SetOrderMatters(false)
	if d.cfg.Username != "" || d.cfg.Password != "" {
		o.SetUsername(d.cfg.Username).SetPassword(d.cfg.Password)
	}
	if d.cfg.TLS != nil {
		o.SetTLSConfig(d.cfg.TLS)
	}
	o.SetConnectionLostHandler(func(c mqtt.Client, err error) {
		d.log.Debug("connection lost", "err", err)
		select {
		case d.lost <- c:
		case <-d.done:
		}
	})
	return mqtt.NewClient(o)
}

// generate makes the tick's publish: a numbered reading, or bad traffic.
func (d *Device) generate() {
	if d.cfg.Count > 0 && d.nextSeq-d.cfg.FirstSeq >= d.cfg.Count {
		d.genDone = true
		return
	}
	r := d.cfg.Rand
	now := time.Now().UnixMilli()
	temp, hum, vib := d.sensor.Next(r)
	rd := reading.Reading{Device: d.cfg.ID, TsMs: now, Temp: temp, Hum: hum, Vib: vib}

	if it, ok := d.badItem(rd); ok {
		d.enqueue(it)
		return
	}
	rd.Seq = d.nextSeq
	payload, err := reading.Encode(rd, d.cfg.Encoding)
	if err != nil {
		d.log.Error("encode reading", "err", err)
		return
	}
	d.nextSeq++
	d.sum.NextSeq = d.nextSeq
	d.sum.Generated++
	d.Stats.Generated.Add(1)
	d.enqueue(item{topic: d.Topic(), payload: payload, seq: rd.Seq, numbered: true})
}

// badItem rolls the dice for injected bad traffic.
func (d *Device) badItem(rd reading.Reading) (item, bool) {
	b, r := d.cfg.Bad, d.cfg.Rand
	if b.Malformed+b.Oversized+b.WrongTopic <= 0 {
		return item{}, false
	}
	x := r.Float64()
	switch {
	case x < b.Malformed:
		good, err := reading.EncodeUnnumbered(rd, d.cfg.Encoding, nil)
		if err != nil || r.IntN(2) == 0 {
			garbage := make([]byte, 1+r.IntN(32))
			for i := range garbage {
				garbage[i] = byte(r.IntN(256))
			}
			// 0xff is a CBOR "break" out of place and no JSON starts with it.
			garbage[0] = 0xff
			return item{topic: d.Topic(), payload: garbage}, true
		}
		return item{topic: d.Topic(), payload: good[:len(good)/2]}, true
	case x < b.Malformed+b.Oversized:
		p, err := reading.EncodeUnnumbered(rd, d.cfg.Encoding, make([]byte, b.OversizeBytes))
		if err != nil {
			return item{}, false
		}
		return item{topic: d.Topic(), payload: p}, true
	case x < b.Malformed+b.Oversized+b.WrongTopic:
		p, err := reading.EncodeUnnumbered(rd, d.cfg.Encoding, nil)
		if err != nil {
			return item{}, false
		}
		return item{topic: d.wrongTop, payload: p}, true
	}
	return item{}, false
}

func (d *Device) enqueue(it item) {
	if old, dropped := d.queue.push(it); dropped {
		d.dropped(old)
	}
	d.Stats.Queued.Store(int64(d.queue.len()))
}

func (d *Device) dropped(it item) {
	if !it.numbered {
		d.sum.BadDropped++
		return
	}
	d.sum.Dropped++
	d.Stats.Dropped.Add(1)
	d.sum.DroppedSeqs.Add(it.seq)
}

// pump publishes from the queue while connected and the window has room.
func (d *Device) pump() {
	for d.client != nil && len(d.inflight) < d.cfg.Inflight && d.queue.len() > 0 {
		if !d.client.IsConnectionOpen() {
			break // the loss report is on its way
		}
		it, _ := d.queue.pop()
		qos := d.cfg.QoS
		if !it.numbered {
			// Bad traffic is fire-and-forget: a broker may rightly refuse it
			// without an acknowledgement, which must not hold up readings.
			qos = 0
		}
		tok := d.client.Publish(it.topic, qos, false, it.payload)
		d.inflight = append(d.inflight, flight{it: it, token: tok, at: time.Now()})
		// Counted as sent before anything can settle it: a publish that
		// fails at once goes back to the queue as a resend, and was
		// acknowledged later without ever having been counted as sent.
		switch {
		case !it.numbered:
		case it.resend:
			d.sum.Resent++
		default:
			d.sum.Sent++
			d.Stats.Sent.Add(1)
			d.sum.LastSentSeq = max(d.sum.LastSentSeq, int64(it.seq))
		}
		if isDone(tok) && tok.Error() != nil {
			// Refused on the spot (not connected, or the write queue timed
			// out): the connection is dead even if paho has not said so.
			d.log.Debug("publish failed at once; reconnecting", "err", tok.Error())
			d.reconnect()
			return
		}
	}
	d.Stats.Queued.Store(int64(d.queue.len()))
}

// reconnect drops the current connection and schedules a new one; what
// was in flight goes back to the queue.
func (d *Device) reconnect() {
	d.client.Disconnect(100)
	d.connectionLost()
	d.retry.Reset(d.nextBackoff())
}

// reapCompleted settles finished publishes from the head of the window. A
// publish that failed goes back to the queue: it may or may not have reached
// the broker, which is exactly MQTT's at-least-once.
func (d *Device) reapCompleted() {
	var failed []item
	n := 0
	for _, f := range d.inflight {
		if !isDone(f.token) {
			break
		}
		n++
		if err := f.token.Error(); err != nil {
			if f.it.numbered {
				f.it.resend = true
				failed = append(failed, f.it)
			}
			continue
		}
		d.acked(f.it)
	}
	d.inflight = d.inflight[n:]
	d.requeue(failed)
}

func isDone(t mqtt.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

func (d *Device) acked(it item) {
	if !it.numbered {
		d.sum.BadSent++
		return
	}
	d.sum.Acked++
	d.Stats.Acked.Add(1)
	d.sum.LastAckedSeq = max(d.sum.LastAckedSeq, int64(it.seq))
}

// requeue puts failed publishes back at the front, oldest first out.
func (d *Device) requeue(items []item) {
	for i := len(items) - 1; i >= 0; i-- {
		if old, dropped := d.queue.pushFront(items[i]); dropped {
			d.dropped(old)
		}
	}
	d.Stats.Queued.Store(int64(d.queue.len()))
}

// connectionLost settles the window after the client gave up the
// connection: paho has already failed every pending token (no auto
// reconnect), so whatever did not complete goes back to the queue.
func (d *Device) connectionLost() {
	d.client = nil
	d.Stats.Connected.Store(false)
	var failed []item
	// Tokens are normally all settled by now; a QoS 0 write that never
	// happened may never settle, so bound the wait.
	deadline := time.Now().Add(time.Second)
	for _, f := range d.inflight {
		f.token.WaitTimeout(max(time.Until(deadline), 0))
		if isDone(f.token) && f.token.Error() == nil {
			d.acked(f.it)
			continue
		}
		if f.it.numbered {
			f.it.resend = true
			failed = append(failed, f.it)
		}
	}
	d.inflight = nil
	d.requeue(failed)
}

// finish disconnects and books everything still pending: in-flight and
// resent readings as unacknowledged (they may have arrived), never-sent
// ones as dropped.
func (d *Device) finish(quiesceMs uint) {
	for _, f := range d.inflight {
		if isDone(f.token) && f.token.Error() == nil {
			d.acked(f.it)
		} else if f.it.numbered {
			d.sum.UnackedSeqs.Add(f.it.seq)
		}
	}
	d.inflight = nil
	for {
		it, ok := d.queue.pop()
		if !ok {
			break
		}
		switch {
		case !it.numbered:
			d.sum.BadDropped++
		case it.resend:
			d.sum.UnackedSeqs.Add(it.seq)
		default:
			d.sum.Unsent++
			d.sum.DroppedSeqs.Add(it.seq)
		}
	}
	d.Stats.Queued.Store(0)
	if d.client != nil {
		d.client.Disconnect(quiesceMs)
		d.client = nil
	}
	d.Stats.Connected.Store(false)
}

// String is for logs.
func (d *Device) String() string { return fmt.Sprintf("device %s", d.cfg.ID) }
