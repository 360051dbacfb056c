package ingest

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/internal/testkit/rawmqtt"
	"github.com/tributary-io/tributary/storage"
)

// slowDisk holds h's appends back until the returned func is called (or
// the test ends, before the server it serves on stops).
func slowDisk(t *testing.T, h *Hook) (release func()) {
	ch := make(chan struct{})
	h.appendBatch = func(l storage.PartitionLog, ctx context.Context, b []byte, o storage.AppendOptions) (storage.AppendResult, error) {
		<-ch
		return l.Append(ctx, b, o)
	}
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return release
}

// serveHook runs a mochi server with h on a loopback port and returns its
// address. Register it before slowDisk: cleanups run last first.
func serveHook(t *testing.T, h *Hook) string {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{})
	if err := srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewNet("t", ln)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// rawDevice is an MQTT client written packet by packet.
type rawDevice struct {
	t       *testing.T
	conn    net.Conn
	r       *bufio.Reader
	version byte
}

// dial connects as client id with clean start (or a persistent session)
// and reads the CONNACK.
func dial(t *testing.T, addr, id string, version byte, clean bool) *rawDevice {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	d := &rawDevice{t: t, conn: conn, r: bufio.NewReader(conn), version: version}
	if code, err := rawmqtt.Connect(conn, d.r, version, id, clean, "", ""); err != nil || code != 0 {
		t.Fatalf("connect %s: code %#x, %v", id, code, err)
	}
	return d
}

// publish writes a QoS 1 publish without waiting for its PUBACK.
func (d *rawDevice) publish(id uint16, payload []byte, dup bool) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Dup: dup}, ProtocolVersion: d.version,
		TopicName: "sensors/d1/r", Payload: payload, PacketID: id}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		d.t.Fatal(err)
	}
	if _, err := d.conn.Write(buf.Bytes()); err != nil {
		d.t.Fatal(err)
	}
}

// read returns the next packet's type and body.
func (d *rawDevice) read(wait time.Duration) (byte, []byte, error) {
	fh, body, err := rawmqtt.Read(d.conn, d.r, wait)
	return fh.Type, body, err
}

// puback reads the next packet, which must be the PUBACK of id.
func (d *rawDevice) puback(id uint16) {
	d.t.Helper()
	typ, body, err := d.read(5 * time.Second)
	if err != nil || typ != packets.Puback || len(body) < 2 {
		d.t.Fatalf("waiting for PUBACK %d: type %d, body % x, %v", id, typ, body, err)
	}
	if got := uint16(body[0])<<8 | uint16(body[1]); got != id {
		d.t.Fatalf("PUBACK %d arrived, want %d", got, id)
	}
}

// TestRefusalWaitsForEarlierPubacks: an MQTT 5 device pipelines a good
// QoS 1 publish, whose PUBACK waits for a slow fsync, and an oversized
// one, which is refused at once. MQTT acknowledges QoS 1 publishes in the
// order they came, so the refusal must not overtake the pending PUBACK;
// it used to.
func TestRefusalWaitsForEarlierPubacks(t *testing.T) {
	t.Parallel()
	h := newTestHookConfig(t, Config{MaxPayloadBytes: 200, DefaultPartitions: 1})
	h.EnableDeferredAcks()
	d := dial(t, serveHook(t, h), "d1", 5, true)
	release := slowDisk(t, h)
	d.publish(1, bytes.Repeat([]byte("x"), 20), false)
	d.publish(2, bytes.Repeat([]byte("x"), 500), false) // too large
	// Nothing may arrive while packet 1 waits for its fsync.
	_ = d.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := d.r.Peek(1); err == nil {
		typ, body, _ := d.read(time.Second)
		t.Fatalf("type %d, body % x arrived while packet 1 was still waiting for its fsync", typ, body)
	}
	release()
	d.puback(1)
	d.puback(2)
}

// TestResendRecognisedOnlyBeforeItsAck: a device re-sends (DUP) a publish
// without a seq whose PUBACK it never got, because its connection dropped
// while the edge waited for the fsync: that copy is not stored again. Once
// a PUBACK for the packet id has been written, MQTT makes any publish with
// that id a new one, DUP or not (MQTT-4.3.2-2), and it is stored: the same
// payload may be a new reading whose first copy was lost. The window used
// to drop it.
func TestResendRecognisedOnlyBeforeItsAck(t *testing.T) {
	t.Parallel()
	h := newTestHookConfig(t, Config{DefaultPartitions: 1})
	h.EnableDeferredAcks()
	addr := serveHook(t, h)
	release := slowDisk(t, h)
	payload := []byte("21.5")
	d := dial(t, addr, "dev", 4, false)
	d.publish(7, payload, false)
	// The connection drops before the fsync ends: no PUBACK is written.
	d.conn.Close()
	gone := poll(func() bool {
		n := 0
		h.acks.Range(func(any, any) bool { n++; return false })
		return n == 0
	})
	if !gone {
		t.Fatal("the edge never saw the device disconnect")
	}
	release()
	if !poll(func() bool { return h.resends.seen(h.resends.key("dev", 7, payload)) }) {
		t.Fatalf("the first copy was never settled (%d stored)", stored(t, h))
	}
	d = dial(t, addr, "dev", 4, false)
	d.publish(7, payload, true) // the re-send
	d.puback(7)
	if n, dups := stored(t, h), h.Counts().Duplicates; n != 1 || dups != 1 {
		t.Fatalf("after the re-send: %d stored, %v duplicates; want 1 and 1", n, dups)
	}
	// PUBACK 7 was written: the same payload with id 7 is a new reading.
	d.publish(7, payload, true)
	d.puback(7)
	if n := stored(t, h); n != 2 {
		t.Fatalf("a DUP publish after its id was acknowledged: %d stored, want 2", n)
	}
}

// poll waits up to 5 s for cond.
func poll(cond func() bool) bool { return testkit.Poll(5*time.Second, cond) }
