package ingest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tributary-io/tributary/edge/payload"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// TestDiskFullRefusesLikeBlock: when the disk is full the publish is
// refused (MQTT 5 QoS 1: 0x97; otherwise no ack), counted, and the hook
// recovers once appends succeed again.
func TestDiskFullRefusesLikeBlock(t *testing.T) {
	t.Parallel()
	h := newTestHook(t)
	full := true
	failAppends(h, &full, fmt.Errorf("write segment: %w", syscall.ENOSPC))
	v5 := &mqtt.Client{ID: "c5", Properties: mqtt.ClientProperties{ProtocolVersion: 5}}
	v3 := &mqtt.Client{ID: "c3", Properties: mqtt.ClientProperties{ProtocolVersion: 4}}
	if _, err := h.OnPublish(v5, publish(1, 0)); !errors.Is(err, packets.ErrQuotaExceeded) {
		t.Fatalf("v5 QoS 1 on a full disk: %v, want quota exceeded", err)
	}
	for _, c := range []struct {
		cl  *mqtt.Client
		qos byte
	}{{v3, 1}, {v3, 0}, {v5, 0}, {v5, 2}, {v3, 2}} {
		if _, err := h.OnPublish(c.cl, publish(c.qos, 0)); !errors.Is(err, packets.ErrRejectPacket) {
			t.Fatalf("v%d QoS %d on a full disk: %v, want reject", c.cl.Properties.ProtocolVersion, c.qos, err)
		}
	}
	if got := h.Counts().Refused[ReasonDiskFull]; got != 6 {
		t.Fatalf("disk-full refusals %v, want 6", got)
	}
	full = false
	if _, err := h.OnPublish(v5, publish(1, 1)); err != nil {
		t.Fatalf("after space was freed: %v", err)
	}
	if n := stored(t, h); n != 1 {
		t.Fatalf("stored %d records, want 1", n)
	}
}

// TestInlinePublishesIgnored: the server's own inline publishes are not readings.
func TestInlinePublishesIgnored(t *testing.T) {
	t.Parallel()
	h := newTestHook(t)
	inline := &mqtt.Client{ID: "inline", Net: mqtt.ClientConnection{Inline: true}}
	if _, err := h.OnPublish(inline, publish(1, 0)); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, h); n != 0 {
		t.Fatalf("inline publish stored %d records", n)
	}
}

// TestDrainRefusesNewPublishes: after Drain nothing more is appended.
func TestDrainRefusesNewPublishes(t *testing.T) {
	t.Parallel()
	h := newTestHook(t)
	cl := &mqtt.Client{ID: "c", Properties: mqtt.ClientProperties{ProtocolVersion: 4}}
	if _, err := h.OnPublish(cl, publish(1, 0)); err != nil {
		t.Fatal(err)
	}
	h.Drain()
	if _, err := h.OnPublish(cl, publish(1, 1)); !errors.Is(err, packets.ErrRejectPacket) {
		t.Fatalf("publish after drain: %v", err)
	}
	if n := stored(t, h); n != 1 {
		t.Fatalf("stored %d, want 1", n)
	}
}

// TestConcurrentPublishesCombined: many clients publishing to one partition
// at once all get their records stored exactly once, each client's in order,
// and large payloads are split into batches the log accepts.
func TestConcurrentPublishesCombined(t *testing.T) {
	t.Parallel()
	h := newTestHookConfig(t, Config{DefaultPartitions: 1, MaxPayloadBytes: 64 << 10})
	const clients, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &mqtt.Client{ID: fmt.Sprintf("c%d", c), Properties: mqtt.ClientProperties{ProtocolVersion: 4}}
			dev := fmt.Sprintf("d%d", c)
			for i := 0; i < each; i++ {
				pad := ""
				if i%5 == 0 {
					pad = strings.Repeat("x", 60<<10) // some near the payload limit
				}
				pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: byte(i % 3)}, TopicName: "sensors/" + dev + "/r",
					Payload: []byte(fmt.Sprintf(`{"device":%q,"seq":%d,"pad":%q}`, dev, i, pad))}
				if _, err := h.OnPublish(cl, pk); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	l, err := h.topics.Partition("sensors", 0)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]uint64{}
	batches, records := 0, 0
	for off := l.StartOffset(); off < l.NextOffset(); {
		b, err := l.Read(off, 1, -1)
		if err != nil {
			t.Fatal(err)
		}
		err = recordbatch.Split(b, func(hd recordbatch.Header, batch []byte) error {
			recs, err := recordbatch.Records(batch)
			if err != nil {
				return err
			}
			batches++
			for _, r := range recs {
				rd, err := payload.Decode(payload.ContentJSON, r.Value)
				if err != nil {
					return err
				}
				if rd.Seq != next[rd.Device] {
					return fmt.Errorf("%s: seq %d stored where %d was due", rd.Device, rd.Seq, next[rd.Device])
				}
				next[rd.Device]++
				records++
			}
			off = hd.NextOffset()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if records != clients*each {
		t.Fatalf("stored %d records, want %d", records, clients*each)
	}
	t.Logf("%d records in %d batches", records, batches)
}

// TestMaxStreams: topics that would create more streams than max_streams
// are kept in the unmapped dead-letter stream instead.
func TestMaxStreams(t *testing.T) {
	t.Parallel()
	h := newTestHookConfig(t, Config{MaxStreams: 2})
	cl := &mqtt.Client{ID: "c", Properties: mqtt.ClientProperties{ProtocolVersion: 4}}
	for _, stream := range []string{"a", "b", "c", "a"} {
		pk := publish(1, 0)
		pk.TopicName = stream + "/d1/r"
		if _, err := h.OnPublish(cl, pk); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, ti := range h.topics.List() {
		names = append(names, ti.Name)
	}
	if strings.Join(names, ",") != "a,b,unmapped.dlq" {
		t.Fatalf("streams %v, want a, b and unmapped.dlq", names)
	}
	if c := h.Counts(); c.DeadLetters != 1 || c.Appended != 4 {
		t.Fatalf("counts %+v: want 1 dead letter of 4 appended", c)
	}
}

// TestDrainDuringPublishes: Drain while clients publish deferred QoS 0 and
// QoS 1 records. Every publish is either stored or refused as "closing" —
// none is lost in a queue — Drain returns with the partition writers
// stopped, and nothing is appended afterwards.
func TestDrainDuringPublishes(t *testing.T) {
	t.Parallel()
	h := newTestHookConfig(t, Config{DefaultPartitions: 2})
	h.EnableDeferredAcks()
	const clients, each = 8, 400
	var wg sync.WaitGroup
	var sent atomic.Int64
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &mqtt.Client{ID: fmt.Sprintf("c%d", c), Properties: mqtt.ClientProperties{ProtocolVersion: 4}}
			for i := 0; i < each; i++ {
				pk := publish(byte(i%2), c*each+i)
				pk.TopicName = fmt.Sprintf("sensors/d%d/r", c)
				pk.Payload = []byte(fmt.Sprintf(`{"device":"d%d","seq":%d}`, c, i))
				pk.PacketID = uint16(i + 1)
				_, _ = h.OnPublish(cl, pk)
				sent.Add(1)
			}
		}()
	}
	// Drain once some publishes are in, while the rest keep coming.
	testkit.Eventually(t, 10*time.Second, "some publishes sent", func() bool { return sent.Load() >= clients })
	h.Drain()
	wg.Wait()
	c := h.Counts()
	if got := c.Appended + c.Refused[ReasonClosing]; got != float64(sent.Load()) {
		t.Fatalf("appended %v + refused while closing %v = %v, want every one of %d publishes",
			c.Appended, c.Refused[ReasonClosing], got, sent.Load())
	}
	if n := stored(t, h); float64(n) != c.Appended {
		t.Fatalf("stored %d records, counted %v appended", n, c.Appended)
	}
	if c.Refused[ReasonClosing] == 0 {
		t.Log("every publish finished before Drain (nothing to refuse this run)")
	}
}
