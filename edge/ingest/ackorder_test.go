package ingest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tributary-io/tributary/storage"
)

// TestRefusalWaitsForEarlierPubacks: an MQTT 5 device pipelines a good
// QoS 1 publish, whose PUBACK waits for a slow fsync, and an oversized
// one, which is refused at once. MQTT acknowledges QoS 1 publishes in the
// order they came, so the refusal must not overtake the pending PUBACK;
// it used to.
func TestRefusalWaitsForEarlierPubacks(t *testing.T) {
	t.Parallel()
	h := newTestHookConfig(t, Config{MaxPayloadBytes: 200, DefaultPartitions: 1})
	h.EnableDeferredAcks()
	release := make(chan struct{})
	h.appendBatch = func(l storage.PartitionLog, ctx context.Context, b []byte, o storage.AppendOptions) (storage.AppendResult, error) {
		<-release // a slow disk
		return l.Append(ctx, b, o)
	}
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
	// Cleanups run last first: the disk comes back before the server stops.
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var buf bytes.Buffer
	c := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5}
	c.Connect.ProtocolName, c.Connect.Clean, c.Connect.Keepalive, c.Connect.ClientIdentifier = []byte("MQTT"), true, 30, "d1"
	if err := c.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	for id, size := range []int{20, 500} { // packet 1 fits, packet 2 is too large
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
			TopicName: "sensors/d1/r", Payload: bytes.Repeat([]byte("x"), size), PacketID: uint16(id + 1)}
		if err := pk.PublishEncode(&buf); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	read := func() (byte, []byte, error) {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		hdr, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n, _, err := packets.DecodeLength(r)
		if err != nil {
			return 0, nil, err
		}
		body := make([]byte, n)
		_, err = io.ReadFull(r, body)
		return hdr >> 4, body, err
	}
	if typ, _, err := read(); err != nil || typ != packets.Connack {
		t.Fatalf("connack: type %d, %v", typ, err)
	}
	// Nothing may arrive while packet 1 waits for its fsync.
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := r.Peek(1); err == nil {
		typ, body, _ := read()
		t.Fatalf("type %d, body % x arrived while packet 1 was still waiting for its fsync", typ, body)
	}
	free()
	for want := uint16(1); want <= 2; want++ {
		typ, body, err := read()
		if err != nil || typ != packets.Puback || len(body) < 2 {
			t.Fatalf("ack %d: type %d, body % x, %v", want, typ, body, err)
		}
		if got := uint16(body[0])<<8 | uint16(body[1]); got != want {
			t.Fatalf("PUBACK %d arrived before PUBACK %d", got, want)
		}
	}
}
