package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/fxamacker/cbor/v2"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/edge/gateway"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/internal/testkit/edgetest"
)

// startEdge runs a real edge gateway in-process, bridged to core the way
// tributary-edge wires it (status source included).
func startEdge(t *testing.T, core string) *gateway.Gateway {
	t.Helper()
	cfg := edgetest.Config(t)
	cfg.HTTP.Address = "127.0.0.1:0"
	g, _ := edgetest.Start(t, cfg, bridge.Config{
		Brokers:    []string{core},
		BackoffMin: 50 * time.Millisecond, BackoffMax: 300 * time.Millisecond,
		RequestTimeout: 2 * time.Second, ScanInterval: 100 * time.Millisecond, SyncPoll: 100 * time.Millisecond,
	}, testkit.Discard())
	return g
}

func publishReadings(t *testing.T, mqttAddr string, from, to int) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID(fmt.Sprintf("cli-test-%d", from)).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	defer c.Disconnect(50)
	for seq := from; seq < to; seq++ {
		payload, err := cbor.Marshal(map[string]any{"device": "dev-1", "seq": seq, "ts": time.Now().UnixMilli(), "temp": 20 + float64(seq)/4})
		if err != nil {
			t.Fatal(err)
		}
		if tok := c.Publish("sensors/dev-1/reading", 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", seq, tok.Error())
		}
	}
}

type backlogJSON struct {
	Partitions []struct {
		Stream         string `json:"stream"`
		Cursor         int64  `json:"cursor"`
		BacklogRecords int64  `json:"backlog_records"`
		LastError      string `json:"last_error"`
	} `json:"partitions"`
}

func (b backlogJSON) total() (n int64) {
	for _, p := range b.Partitions {
		n += p.BacklogRecords
	}
	return n
}

// forwarded is how many records the core has acknowledged, over all
// partitions (each cursor counts from offset 0).
func (b backlogJSON) forwarded() (n int64) {
	for _, p := range b.Partitions {
		n += p.Cursor
	}
	return n
}

// A real edge bridged to a real core: the edge's readings reach the core
// (consume shows them decoded, with the edge's headers); with the core
// down, edge status, streams and backlog answer and the backlog grows;
// tail shows the newest readings on the edge.
func TestCLIEdge(t *testing.T) {
	core, stopCore := startStoppableCore(t)
	g := startEdge(t, core)
	e := "--edge=http://" + g.HTTPAddr()
	b := "--brokers=" + core

	publishReadings(t, g.MQTTAddr(), 0, 10)
	testkit.Eventually(t, 20*time.Second, "the bridge to forward 10 readings", func() bool {
		var bl backlogJSON
		out, _, err := cli(t, "", e, "edge", "backlog", "-o", "json")
		// A backlog of 0 alone can be a status from before the bridge saw
		// the readings: wait for the core to have acknowledged all ten.
		return err == nil && json.Unmarshal([]byte(out), &bl) == nil && bl.forwarded() == 10 && bl.total() == 0
	})
	out := mustCLI(t, "", b, "topic", "consume", "sensors", "-n", "10")
	var first shownRecord
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &first); err != nil {
		t.Fatal(err)
	}
	if v, ok := first.Value.(map[string]any); !ok || first.Format != "cbor" || v["device"] != "dev-1" || first.Headers["edge-id"] != g.EdgeID() {
		t.Fatalf("a forwarded reading on the core: %+v", first)
	}

	stopCore()
	publishReadings(t, g.MQTTAddr(), 10, 25)
	testkit.Eventually(t, 20*time.Second, "a backlog of 15 with the core down", func() bool {
		var bl backlogJSON
		out, _, err := cli(t, "", e, "edge", "backlog", "-o", "json")
		return err == nil && json.Unmarshal([]byte(out), &bl) == nil && bl.total() == 15
	})
	out = mustCLI(t, "", e, "edge", "backlog")
	t.Logf("edge backlog (core down):\n%s", out)
	if !strings.Contains(out, "15 records") || !strings.Contains(out, "sensors") {
		t.Fatalf("edge backlog:\n%s", out)
	}

	out = mustCLI(t, "", e, "edge", "status")
	t.Logf("edge status:\n%s", out)
	var st edgeStatusResp
	jsonOut(t, &st, e, "edge", "status")
	if st.EdgeID != g.EdgeID() || st.Appended != 25 || st.Bridge != "on" || st.LogBytes == 0 {
		t.Fatalf("edge status: %+v", st)
	}

	out = mustCLI(t, "", e, "edge", "streams")
	t.Logf("edge streams:\n%s", out)
	var ss []edgeStream
	jsonOut(t, &ss, e, "edge", "streams")
	if len(ss) != 1 || ss[0].Stream != "sensors" || ss[0].Records != 25 {
		t.Fatalf("edge streams: %+v", ss)
	}

	out = mustCLI(t, "", e, "edge", "tail", "sensors", "-n", "3")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var last struct {
		Format string
		Value  map[string]any
	}
	if len(lines) != 3 || json.Unmarshal([]byte(lines[2]), &last) != nil || last.Format != "cbor" || last.Value["seq"] != 24.0 {
		t.Fatalf("edge tail:\n%s", out)
	}

	// -f prints what arrives after it started.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	root := newRootCmd(strings.NewReader(""), pw, io.Discard)
	root.SetArgs([]string{e, "edge", "tail", "sensors", "-n", "1", "-f", "--interval", "50ms"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	lines = nil
	started := make(chan struct{})
	seen := make(chan []string, 1)
	go func() {
		announced := false
		var got []string
		buf := make([]byte, 64<<10)
		var acc strings.Builder
		for {
			n, err := pr.Read(buf)
			acc.Write(buf[:n])
			got = strings.Split(strings.TrimSpace(acc.String()), "\n")
			if !announced && got[0] != "" {
				close(started) // the initial snapshot is out: what comes next is new
				announced = true
			}
			if len(got) >= 2 || err != nil {
				seen <- got
				io.Copy(io.Discard, pr)
				return
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("tail -f printed no first record")
	}
	publishReadings(t, g.MQTTAddr(), 25, 26)
	select {
	case lines = <-seen:
	case <-time.After(20 * time.Second):
		t.Fatal("tail -f printed nothing new")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("tail -f: %v", err)
	}
	if len(lines) < 2 || !strings.Contains(lines[1], `"seq":25`) {
		t.Fatalf("tail -f:\n%s", strings.Join(lines, "\n"))
	}

	g.SetStatusSource("bridge", nil)
	if _, _, err := cli(t, "", e, "edge", "backlog"); err == nil || !strings.Contains(err.Error(), "bridge off") {
		t.Fatalf("backlog with the bridge off: %v", err)
	}
	if _, _, err := cli(t, "", "--edge=127.0.0.1:1", "--timeout=1s", "edge", "status"); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("status of no edge: %v", err)
	}
}
