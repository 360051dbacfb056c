package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestAPI publishes CBOR, JSON and a payload that goes to the dead-letter
// stream, then reads them back through the read-only JSON API.
func TestAPI(t *testing.T) {
	t.Parallel()
	g, _ := startGateway(t, testConfig(t))
	base := "http://" + g.HTTPAddr() + "/api/v1"
	c := connectPaho(t, g.MQTTAddr(), "api-test", "", "")
	now := time.Now().UnixMilli()
	for i := range 20 {
		payload := jsonReading("d1", uint64(i), now+int64(i))
		if i%2 == 1 {
			payload = cborReading(t, "d1", uint64(i), now+int64(i))
		}
		if tok := c.Publish("sensors/d1/reading", 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	if tok := c.Publish("sensors/d1/reading", 1, false, []byte{0xff, 0xfe}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish garbage: %v", tok.Error())
	}

	var st Status
	if code := testkit.GetJSON(t, base+"/status", &st); code != 200 || st.EdgeID != g.EdgeID() || st.Appended != 21 ||
		st.DeadLetters != 1 || st.Bridge != "off" || st.LogBytes == 0 || st.Streams != 2 {
		t.Fatalf("status %d: %+v", code, st)
	}

	var streams []StreamInfo
	testkit.GetJSON(t, base+"/streams", &streams)
	if len(streams) != 2 || streams[0].Stream != "sensors" || streams[0].Records != 20 || streams[1].Stream != "sensors.dlq" || streams[1].Records != 1 {
		t.Fatalf("streams: %+v", streams)
	}
	if p := streams[0].Partitions; len(p) == 0 || p[0].EndOffset < p[0].StartOffset || streams[0].Bytes == 0 {
		t.Fatalf("partitions: %+v", p)
	}

	var tail []TailRecord
	testkit.GetJSON(t, base+"/tail?stream=sensors&n=5", &tail)
	if len(tail) != 5 {
		t.Fatalf("tail: %+v", tail)
	}
	last := tail[4]
	if v, ok := last.Value.(map[string]any); !ok || last.Format != "cbor" || v["seq"] != 19.0 || last.Key != "d1" {
		t.Fatalf("last record not decoded from CBOR: %+v", last)
	}
	if v, ok := tail[3].Value.(map[string]any); !ok || tail[3].Format != "json" || v["seq"] != 18.0 {
		t.Fatalf("record before it: %+v", tail[3])
	}
	testkit.GetJSON(t, base+"/tail?stream=sensors.dlq", &tail)
	if len(tail) != 1 || tail[0].Headers["reason"] == "" || tail[0].Format != "base64" {
		t.Fatalf("dead letter: %+v", tail)
	}
	testkit.GetJSON(t, base+"/tail?stream=sensors&n=1000", &tail)
	if len(tail) != 20 {
		t.Fatalf("tail of everything: %d records", len(tail))
	}

	var e map[string]string
	for url, want := range map[string]int{
		base + "/bridge":                           404,
		base + "/tail?stream=nope":                 404,
		base + "/tail?stream=sensors&n=0":          400,
		base + "/tail?stream=sensors&n=x":          400,
		base + "/tail?stream=sensors&partition=99": 400,
	} {
		if code := testkit.GetJSON(t, url, &e); code != want || e["error"] == "" {
			t.Errorf("%s: %d %v, want %d with an error", url, code, e, want)
		}
	}

	g.SetStatusSource("bridge", func() any { return map[string]any{"partitions": []any{}} })
	var b map[string]any
	if code := testkit.GetJSON(t, base+"/bridge", &b); code != 200 || b["partitions"] == nil {
		t.Fatalf("bridge with a source: %d %v", code, b)
	}
	testkit.GetJSON(t, base+"/status", &st)
	if st.Bridge != "on" {
		t.Fatalf("status with a bridge: %+v", st)
	}
	// Aggregations: an empty list until the edge registers them, then their
	// status here and under "aggregations" in /healthz.
	var aggs []map[string]any
	if code := testkit.GetJSON(t, base+"/aggregations", &aggs); code != 200 || len(aggs) != 0 {
		t.Fatalf("aggregations before any: %d %v", code, aggs)
	}
	g.SetStatusSource("aggregations", func() any { return []map[string]any{{"name": "1m", "running": true}} })
	if code := testkit.GetJSON(t, base+"/aggregations", &aggs); code != 200 || len(aggs) != 1 || aggs[0]["name"] != "1m" {
		t.Fatalf("aggregations: %d %v", code, aggs)
	}
	var health map[string]any
	testkit.GetJSON(t, "http://"+g.HTTPAddr()+"/healthz", &health)
	if h, ok := health["aggregations"].([]any); !ok || len(h) != 1 {
		t.Fatalf("/healthz lacks the aggregations: %v", health)
	}
	resp, err := http.Post(base+"/status", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST status: %d", resp.StatusCode)
	}
	// Answers describe the moment: a browser or proxy must not keep them.
	for _, path := range []string{"/status", "/streams", "/tail?stream=nope"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", path, cc)
		}
	}
}
