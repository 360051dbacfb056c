package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
)

func timedPublish(dev string, seq int, ts int64) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "sensors/" + dev + "/r",
		Payload: []byte(fmt.Sprintf(`{"device":%q,"seq":%d,"ts":%d,"temp":20.5}`, dev, seq, ts)), PacketID: 1}
}

func mustPublish(t *testing.T, h *Hook, pk packets.Packet) {
	t.Helper()
	cl := &mqtt.Client{ID: "c", Properties: mqtt.ClientProperties{ProtocolVersion: 4}}
	if _, err := h.OnPublish(cl, pk); err != nil {
		t.Fatalf("publish %s: %v", pk.Payload, err)
	}
}

// TestResendStoredOnce: a re-send of a stored (seq, ts) is acknowledged and
// counted but not stored; a new ts with the same seq, a reading without ts,
// and a re-send of a reading whose append failed are stored.
func TestResendStoredOnce(t *testing.T) {
	t.Parallel()
	h := newTestHook(t)
	const ts0 = 1_700_000_000_000
	for seq := 0; seq < 10; seq++ {
		mustPublish(t, h, timedPublish("d1", seq, ts0+int64(seq)))
	}
	mustPublish(t, h, timedPublish("d1", 5, ts0+5))
	mustPublish(t, h, timedPublish("d1", 9, ts0+9))
	if n, d := stored(t, h), h.Counts().Duplicates; n != 10 || d != 2 {
		t.Fatalf("stored %d (want 10), duplicates %v (want 2)", n, d)
	}
	mustPublish(t, h, timedPublish("d1", 5, ts0+100_000)) // device restarted numbering
	mustPublish(t, h, timedPublish("d2", 5, ts0+5))       // another device
	mustPublish(t, h, publish(1, 5))                      // no ts: never deduplicated
	mustPublish(t, h, publish(1, 5))
	if n := stored(t, h); n != 14 {
		t.Fatalf("stored %d, want 14", n)
	}

	fail := true
	failAppends(h, &fail, fmt.Errorf("write: %w", syscall.EIO))
	cl := &mqtt.Client{ID: "c", Properties: mqtt.ClientProperties{ProtocolVersion: 4}}
	if _, err := h.OnPublish(cl, timedPublish("d1", 10, ts0+10)); err == nil {
		t.Fatal("append failure not reported")
	}
	fail = false
	mustPublish(t, h, timedPublish("d1", 10, ts0+10))
	if n, d := stored(t, h), h.Counts().Duplicates; n != 15 || d != 2 {
		t.Fatalf("after a failed append and its re-send: stored %d (want 15), duplicates %v (want 2)", n, d)
	}
}

// TestDedupWindowRebuiltOnStart: a new hook over the same logs recognises
// re-sends of what the previous one stored, within TailBytes of the end.
func TestDedupWindowRebuiltOnStart(t *testing.T) {
	t.Parallel()
	h := newTestHookConfig(t, Config{DefaultPartitions: 1})
	const ts0 = 1_700_000_000_000
	for seq := 0; seq < 2000; seq++ {
		mustPublish(t, h, timedPublish(fmt.Sprintf("d%d", seq%10), seq, ts0+int64(seq)))
	}
	reopen := func(tail int64) *Hook {
		h2, err := New(context.Background(), Config{DefaultPartitions: 1, Dedup: DedupConfig{TailBytes: tail}}, h.topics, h.auth, h.mapper,
			prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h2.Drain) // its partition writers stop before the logs close
		return h2
	}
	h2 := reopen(0) // default 4 MiB covers everything here
	for seq := 1990; seq < 2000; seq++ {
		mustPublish(t, h2, timedPublish(fmt.Sprintf("d%d", seq%10), seq, ts0+int64(seq)))
	}
	if n, d := stored(t, h2), h2.Counts().Duplicates; n != 2000 || d != 10 {
		t.Fatalf("after restart: stored %d (want 2000), duplicates %v (want 10)", n, d)
	}

	// A tail of ~10 KiB holds only the last ~100 records: older re-sends
	// are stored again (the documented limit), recent ones are not.
	h3 := reopen(10 << 10)
	mustPublish(t, h3, timedPublish("d0", 0, ts0))
	mustPublish(t, h3, timedPublish("d9", 1999, ts0+1999))
	if n, d := stored(t, h3), h3.Counts().Duplicates; n != 2001 || d != 1 {
		t.Fatalf("small tail: stored %d (want 2001), duplicates %v (want 1)", n, d)
	}
}
