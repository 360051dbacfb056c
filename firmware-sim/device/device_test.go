package device

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-io/tributary/firmware-sim/internal/mqtttest"
	"github.com/tributary-io/tributary/firmware-sim/reading"
	"github.com/tributary-io/tributary/firmware-sim/summary"
	"github.com/tributary-io/tributary/firmware-sim/verify"
	"github.com/tributary-io/tributary/internal/testkit"
)

func startBroker(t *testing.T, o mqtttest.Options) *mqtttest.Broker {
	t.Helper()
	var b *mqtttest.Broker
	var err error
	// A restart on the previous port may find it not yet released.
	testkit.Poll(5*time.Second, func() bool {
		b, err = mqtttest.Start(o)
		return err == nil || o.Addr == ""
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func testConfig(id, addr string) Config {
	return Config{
		ID: id, Broker: "tcp://" + addr, Stream: "sensors", Encoding: reading.CBOR, QoS: 1,
		Rate: 500, Jitter: 0.2, QueueSize: 100, Inflight: 8,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		ConnectTimeout: 2 * time.Second,
		Rand:           mrand.New(mrand.NewPCG(7, 7)), Logger: testkit.Discard(),
	}
}

func run(t *testing.T, cfg Config) summary.Device {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := New(cfg).Run(ctx, nil)
	if ctx.Err() != nil {
		t.Fatalf("device did not finish in time: %+v", s)
	}
	return s
}

// decodeAll decodes the broker's publishes, failing on anything that is
// not a reading of the expected device.
func decodeAll(t *testing.T, e reading.Encoding, pubs []mqtttest.Publish, device string) []reading.Reading {
	t.Helper()
	var out []reading.Reading
	for _, p := range pubs {
		r, err := reading.Decode(e.ContentType(), p.Payload)
		if err != nil {
			t.Fatalf("publish on %s does not decode: %v", p.Topic, err)
		}
		if r.Device != device || p.Topic != "sensors/"+device+"/reading" {
			t.Fatalf("reading %+v on topic %s", r, p.Topic)
		}
		out = append(out, r)
	}
	return out
}

func TestPublishesCountReadingsInEveryEncodingAndQoS(t *testing.T) {
	t.Parallel()
	b := startBroker(t, mqtttest.Options{})
	for _, e := range reading.Encodings {
		for _, qos := range []byte{0, 1} {
			id := "dev-" + string(e) + "-q" + string('0'+qos)
			cfg := testConfig(id, b.Addr())
			cfg.Encoding, cfg.QoS, cfg.Count, cfg.FirstSeq = e, qos, 30, 100
			s := run(t, cfg)
			if s.Generated != 30 || s.Sent != 30 || s.Acked != 30 || s.NextSeq != 130 || s.LastAckedSeq != 129 {
				t.Fatalf("%s: summary %+v", id, s)
			}
			var mine []mqtttest.Publish
			// A QoS 0 publish has no acknowledgement: the device may be
			// done before the broker has read its last ones.
			testkit.Poll(5*time.Second, func() bool {
				mine = mine[:0]
				for _, p := range b.Publishes() {
					if p.Client == id {
						mine = append(mine, p)
					}
				}
				return len(mine) >= 30
			})
			rs := decodeAll(t, e, mine, id)
			if len(rs) != 30 {
				t.Fatalf("%s: broker has %d readings, want 30", id, len(rs))
			}
			now := time.Now().UnixMilli()
			for i, r := range rs {
				if r.Seq != uint64(100+i) {
					t.Fatalf("%s: reading %d has seq %d", id, i, r.Seq)
				}
				if r.TsMs > now || r.TsMs < now-60_000 {
					t.Errorf("%s: ts %d is not recent", id, r.TsMs)
				}
				if r.Temp < -20 || r.Temp > 60 || r.Hum < 0 || r.Hum > 100 || r.Vib < 0 {
					t.Errorf("%s: values out of range: %+v", id, r)
				}
			}
		}
	}
}

func TestReconnectsResendsAndDropsOldestWhileOffline(t *testing.T) {
	t.Parallel()
	b1 := startBroker(t, mqtttest.Options{})
	addr := b1.Addr()
	cfg := testConfig("dev-r", addr)
	cfg.Rate, cfg.QueueSize = 400, 20
	d := New(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := make(chan struct{})
	res := make(chan summary.Device, 1)
	go func() { res <- d.Run(ctx, stop) }()

	testkit.Eventually(t, 15*time.Second, "first broker to get readings", func() bool { return b1.Count() >= 20 })
	b1.Close()
	testkit.Eventually(t, 15*time.Second, "offline queue to overflow", func() bool { return d.Stats.Dropped.Load() > 0 })
	b2 := startBroker(t, mqtttest.Options{Addr: addr})
	testkit.Eventually(t, 15*time.Second, "second broker to get readings", func() bool { return b2.Count() >= 40 })
	close(stop)
	var s summary.Device
	select {
	case s = <-res:
	case <-time.After(20 * time.Second):
		t.Fatal("device did not drain")
	}

	if s.Connects < 2 || s.Dropped == 0 || s.DroppedSeqs.Count() != s.Dropped {
		t.Fatalf("summary %+v", s)
	}
	if len(s.UnackedSeqs) != 0 {
		t.Fatalf("drained device has unacked readings: %v", s.UnackedSeqs)
	}
	got := map[uint64]int{}
	for _, r := range decodeAll(t, reading.CBOR, append(b1.Publishes(), b2.Publishes()...), "dev-r") {
		got[r.Seq]++
	}
	for seq := s.FirstSeq; seq < s.NextSeq; seq++ {
		if s.Required(seq) && got[seq] == 0 {
			t.Errorf("acked seq %d never reached a broker", seq)
		}
		if s.DroppedSeqs.Contains(seq) && got[seq] > 0 {
			// Only a reading that was in flight when the broker went away
			// can be both delivered and later dropped.
			t.Logf("dropped seq %d had been delivered before the drop", seq)
		}
	}
	for seq := range got {
		if seq >= s.NextSeq {
			t.Errorf("broker got seq %d beyond next seq %d", seq, s.NextSeq)
		}
	}
	if s.Acked+s.Dropped != s.Generated {
		t.Errorf("acked %d + dropped %d != generated %d", s.Acked, s.Dropped, s.Generated)
	}
	// Every acknowledged reading was counted as sent first, including one
	// whose first publish failed at once as the broker went away.
	if s.Acked > s.Sent {
		t.Errorf("acked %d > sent %d: a resend was acknowledged before it was counted as sent", s.Acked, s.Sent)
	}
}

// onceAtSeq is a broker hook that fires once: for the first publish of the
// reading numbered seq.
type onceAtSeq struct {
	seq   uint64
	fired atomic.Bool
}

func (o *onceAtSeq) hit(p mqtttest.Publish) bool {
	r, err := reading.Decode("", p.Payload)
	return err == nil && r.Seq == o.seq && o.fired.CompareAndSwap(false, true)
}

func TestUnacknowledgedPublishIsResentOnANewConnection(t *testing.T) {
	t.Parallel()
	// Refuse seq 3 once, silently, as an edge refusing a 3.1.1 publish does.
	refused := &onceAtSeq{seq: 3}
	b := startBroker(t, mqtttest.Options{Refuse: refused.hit})
	cfg := testConfig("dev-ack", b.Addr())
	cfg.Count, cfg.AckTimeout = 10, 100*time.Millisecond
	s := run(t, cfg)
	if !refused.fired.Load() || s.Acked != 10 || s.Resent == 0 || s.Connects < 2 || len(s.UnackedSeqs) != 0 {
		t.Fatalf("summary %+v", s)
	}
	got := map[uint64]int{}
	for _, r := range decodeAll(t, reading.CBOR, b.Publishes(), "dev-ack") {
		got[r.Seq]++
	}
	if len(got) != 10 || got[3] != 1 {
		t.Fatalf("broker stored %v", got)
	}
}

// TestLostAckDuplicateIsCaughtByVerifier cuts the connection after the
// broker stored a reading but before its PUBACK: the device resends it (MQTT
// at-least-once), and the verifier, fed what the broker stored, reports
// exactly that duplicate.
func TestLostAckDuplicateIsCaughtByVerifier(t *testing.T) {
	t.Parallel()
	cut := &onceAtSeq{seq: 5}
	b := startBroker(t, mqtttest.Options{CutAfter: cut.hit})
	cfg := testConfig("dev-dup", b.Addr())
	cfg.Count = 10
	s := run(t, cfg)
	if !cut.fired.Load() || s.Acked != 10 || s.Resent == 0 || s.Connects < 2 {
		t.Fatalf("summary %+v", s)
	}
	c := verify.NewChecker(&summary.Summary{Devices: []summary.Device{s}})
	for i, p := range b.Publishes() {
		c.ObserveRecord(0, int64(i), []byte(p.Client), p.Payload, "")
	}
	r := c.Report()
	if r.Lost != 0 || r.Duplicated == 0 || r.Devices[0].Duplicates[0].Seq != 5 {
		t.Fatalf("report %+v", r)
	}
	if r.Verdict(false, false) == nil {
		t.Fatal("a duplicate passed the verdict")
	}
}

func TestBadTrafficIsNeverANumberedReading(t *testing.T) {
	t.Parallel()
	b := startBroker(t, mqtttest.Options{})
	for _, e := range reading.Encodings {
		id := "dev-bad-" + string(e)
		cfg := testConfig(id, b.Addr())
		cfg.Encoding, cfg.Count = e, 40
		cfg.Bad = BadTraffic{Malformed: 0.2, Oversized: 0.1, WrongTopic: 0.2, OversizeBytes: 4000}
		s := run(t, cfg)
		var good, malformed, oversized, wrong uint64
		seen := map[uint64]bool{}
		for _, p := range b.Publishes() {
			if p.Client != id {
				continue
			}
			r, err := reading.Decode(e.ContentType(), p.Payload)
			switch {
			case p.Topic == "sensors":
				wrong++
				if !errors.Is(err, reading.ErrNotReading) {
					t.Errorf("%s: wrong-topic payload: %v", id, err)
				}
			case err == nil:
				good++
				seen[r.Seq] = true
			case errors.Is(err, reading.ErrMalformed):
				malformed++
			case errors.Is(err, reading.ErrNotReading) && len(p.Payload) > 4000:
				oversized++
			default:
				t.Errorf("%s: unexpected publish %q: %v", id, p.Payload, err)
			}
		}
		if good != 40 || len(seen) != 40 || s.Acked != 40 {
			t.Errorf("%s: %d good readings (%d distinct), acked %d; want 40", id, good, len(seen), s.Acked)
		}
		if malformed == 0 || oversized == 0 || wrong == 0 {
			t.Errorf("%s: bad traffic missing: malformed %d oversized %d wrong %d", id, malformed, oversized, wrong)
		}
		if s.BadSent != malformed+oversized+wrong {
			t.Errorf("%s: bad sent %d, broker saw %d", id, s.BadSent, malformed+oversized+wrong)
		}
	}
}

func TestCredentialsAndTLS(t *testing.T) {
	t.Parallel()
	certs := testkit.ServerCerts(t)
	srvTLS, clientTLS := certs.Server, certs.Client
	b := startBroker(t, mqtttest.Options{TLS: srvTLS, Logins: map[string]string{"dev-tls": "s3cret"}})
	cfg := testConfig("dev-tls", b.Addr())
	cfg.Broker = "ssl://" + b.Addr()
	cfg.TLS, cfg.Username, cfg.Password, cfg.Count = clientTLS, "dev-tls", "s3cret", 10
	if s := run(t, cfg); s.Acked != 10 {
		t.Fatalf("acked %d, want 10: %+v", s.Acked, s)
	}

	// A wrong password never gets in; everything generated stays unsent.
	cfg.Password, cfg.Count = "wrong", 5
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s := New(cfg).Run(ctx, nil)
	if s.Connects != 0 || s.Acked != 0 || s.Unsent != s.Generated || s.RequiredCount() != 0 {
		t.Fatalf("with a wrong password: %+v", s)
	}
}

func TestQueueDropsOldest(t *testing.T) {
	t.Parallel()
	q := newQueue(3)
	for i := range uint64(5) {
		old, dropped := q.push(item{seq: i, numbered: true})
		if dropped != (i >= 3) || (dropped && old.seq != i-3) {
			t.Fatalf("push %d: dropped %v (%d)", i, dropped, old.seq)
		}
	}
	// Full: a re-queued older item is itself the oldest, so it goes.
	if old, dropped := q.pushFront(item{seq: 1}); !dropped || old.seq != 1 {
		t.Fatalf("pushFront on full queue kept the item")
	}
	q.pop()
	if _, dropped := q.pushFront(item{seq: 1}); dropped {
		t.Fatal("pushFront with room dropped")
	}
	var got []uint64
	for it, ok := q.pop(); ok; it, ok = q.pop() {
		got = append(got, it.seq)
	}
	if len(got) != 3 || got[0] != 1 || got[1] != 3 || got[2] != 4 {
		t.Fatalf("queue order %v, want [1 3 4]", got)
	}
}

func TestSensorIsDeterministicAndBounded(t *testing.T) {
	t.Parallel()
	r1, r2 := mrand.New(mrand.NewPCG(42, 1)), mrand.New(mrand.NewPCG(42, 1))
	s1, s2 := NewSensor(r1), NewSensor(r2)
	var prevT float64
	for i := range 100_000 {
		t1, h1, v1 := s1.Next(r1)
		t2, h2, v2 := s2.Next(r2)
		if t1 != t2 || h1 != h2 || v1 != v2 {
			t.Fatalf("step %d: same seed diverged", i)
		}
		if t1 < -20 || t1 > 60 || h1 < 0 || h1 > 100 || v1 < 0 || v1 > 20 {
			t.Fatalf("step %d: out of bounds %v %v %v", i, t1, h1, v1)
		}
		// Drift, not noise: consecutive temperatures stay close.
		if i > 0 && (t1-prevT > 1 || prevT-t1 > 1) {
			t.Fatalf("step %d: temperature jumped %v -> %v", i, prevT, t1)
		}
		prevT = t1
	}
}
