package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestPipelinedQoS1AckedInOrder: clients that keep many QoS 1 publishes in
// flight (deferred acknowledgements) get every PUBACK, in the order they
// published (MQTT 4.6), and every reading is stored once, whether or not
// the connection is MQTT 5 and whatever the partition.
func TestPipelinedQoS1AckedInOrder(t *testing.T) {
	t.Parallel()
	g, stop := startGateway(t, testConfig(t))
	const clients, per = 8, 300
	err := inParallel(clients, func(c int) error {
		version := byte(4 + c%2) // 3.1.1 and 5
		dev := fmt.Sprintf("pipe-%d", c)
		rc, code, err := dialRaw(t, g.MQTTAddr(), version, dev, "", "")
		if err != nil || code != 0 {
			return fmt.Errorf("%s: connect: %v %d", dev, err, code)
		}
		// All publishes go out at once; the acks are read afterwards
		// (the socket buffers hold 300 small PUBACKs).
		if err := rc.publishAll(dev, version, 1, per); err != nil {
			return err
		}
		for s := 0; s < per; s++ {
			fh, body, err := rc.read(10 * time.Second)
			if err != nil {
				return fmt.Errorf("%s: ack %d: %w", dev, s, err)
			}
			if fh.Type != packets.Puback || len(body) < 2 {
				return fmt.Errorf("%s: want puback, got type %d", dev, fh.Type)
			}
			if id := binary.BigEndian.Uint16(body); id != uint16(s+1) {
				return fmt.Errorf("%s: PUBACK %d for packet %d: out of order", dev, s, id)
			}
			if len(body) > 2 && body[2] != 0 {
				return fmt.Errorf("%s: PUBACK %d carries code %#x", dev, s, body[2])
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	stop()
	recs := readStreamOffline(t, g.cfg.DataDir, "sensors")
	if len(recs) != clients*per {
		t.Fatalf("stored %d records, want %d", len(recs), clients*per)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		k := string(r.Value)
		if seen[k] {
			t.Fatalf("stored twice: %s", k)
		}
		seen[k] = true
	}
}

// TestPipelinedQoS0StoredInOrder: QoS 0 publishes are queued without
// waiting for their write. A burst far larger than a partition's queue
// (maxDeferred) from each client is stored completely and in order per
// device, and a QoS 1 publish after it is acknowledged only once everything
// before it is written.
func TestPipelinedQoS0StoredInOrder(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	g, _ := startGateway(t, cfg)
	const clients, per = 4, 6000
	err := inParallel(clients, func(c int) error {
		dev := fmt.Sprintf("burst-%d", c)
		rc, code, err := dialRaw(t, g.MQTTAddr(), 4, dev, "", "")
		if err != nil || code != 0 {
			return fmt.Errorf("%s: connect: %v %d", dev, err, code)
		}
		if err := rc.publishAll(dev, 4, 0, per); err != nil {
			return err
		}
		// The fence: acknowledged after every QoS 0 publish before it.
		if code, err := rc.publish("sensors/"+dev+"/reading", jsonReading(dev, per, 1_700_000_000_000+per), 1, "", 20*time.Second); err != nil || code != 0 {
			return fmt.Errorf("%s: fence: %#x %v", dev, code, err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	recs := readStream(t, g.topics, "sensors") // no waiting: the fences were acknowledged
	next := map[string]uint64{}
	for _, r := range recs {
		dev, _ := header(r.Record, "device")
		var m struct{ Seq uint64 }
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatal(err)
		}
		if m.Seq != next[dev] {
			t.Fatalf("%s: stored seq %d, want %d (lost or out of order)", dev, m.Seq, next[dev])
		}
		next[dev]++
	}
	for c := 0; c < clients; c++ {
		if dev := fmt.Sprintf("burst-%d", c); next[dev] != per+1 {
			t.Fatalf("%s: %d records stored, want %d", dev, next[dev], per+1)
		}
	}
}

// publishAll writes n publishes of readings 0..n-1 from dev in one write,
// without waiting for any acknowledgement (packet ids 1..n for QoS > 0).
func (c *rawClient) publishAll(dev string, version, qos byte, n int) error {
	var all bytes.Buffer
	for s := 0; s < n; s++ {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, ProtocolVersion: version,
			TopicName: "sensors/" + dev + "/reading", Payload: jsonReading(dev, uint64(s), 1_700_000_000_000+int64(s))}
		if qos > 0 {
			pk.PacketID = uint16(s + 1)
		}
		if err := pk.PublishEncode(&all); err != nil {
			return fmt.Errorf("encode publish %d: %w", s, err)
		}
	}
	if _, err := c.conn.Write(all.Bytes()); err != nil {
		return fmt.Errorf("write %d publishes: %w", n, err)
	}
	return nil
}
