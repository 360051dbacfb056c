package gateway

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-io/tributary/edge/rules"
	"github.com/tributary-io/tributary/internal/testkit"
)

// BenchmarkPipelineJSON runs the whole QoS 1 path of a generic JSON
// publish inside one process: a gateway on loopback with the Zigbee2MQTT
// rule of the ingest benchmark (key from the topic, time from /ts), and
// 100 connections that each keep 32 publishes of 100 B unacknowledged, as
// tributary-bench's ingest section does against the binary; and 4 such
// connections, a few devices each paced by its own PUBACKs. One op is one
// publish stored (fsynced) and acknowledged; allocs/op counts the whole
// process, and the load generator allocates nothing per publish, so it is
// the gateway's. Profile it with -cpuprofile: unlike the binary's profile
// it is not shared with another process.
//
//	go test -run '^$' -bench PipelineJSON -benchtime 400000x ./edge/gateway/
func BenchmarkPipelineJSON(b *testing.B) {
	for _, conns := range []int{100, 4} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) { pipelineJSON(b, conns) })
	}
}

func pipelineJSON(b *testing.B, conns int) {
	// The binary's default collector target (tributary-edge sets it from
	// gc_percent); the test binary would otherwise run with Go's 100.
	defer debug.SetGCPercent(debug.SetGCPercent(Defaults().GCPercent))
	cfg := testConfig(b)
	cfg.LogLevel = "error"
	cfg.Ingest.Rules = []rules.Config{{Name: "zigbee2mqtt", Match: "zigbee2mqtt/{device}", Stream: "zigbee2mqtt", Format: "json",
		Time: rules.TimeConfig{Field: "/ts", Unit: "ms"}}}
	g, err := Open(cfg, testkit.Discard())
	if err != nil {
		b.Fatal(err)
	}
	testkit.Run(b, "gateway", g.Run)
	cs := make([]net.Conn, conns)
	pubs := make([]*jsonPub, conns)
	for i := range cs {
		c, code, err := dialRaw(b, g.MQTTAddr(), 4, fmt.Sprintf("bench-%d", i), "", "")
		if err != nil || code != 0 {
			b.Fatalf("connect %d: %v (code %d)", i, err, code)
		}
		cs[i] = c.conn
		pubs[i] = newJSONPub(fmt.Sprintf("plug-%06d", i))
		// One publish first, so the stream exists before the clock starts.
		if err := pipelinePublish(c.conn, pubs[i], 1); err != nil {
			b.Fatal(err)
		}
	}
	per := (b.N + conns - 1) / conns
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	start := time.Now()
	err = inParallel(conns, func(i int) error {
		if err := pipelinePublish(cs[i], pubs[i], per); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		return nil
	})
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(per*conns)/elapsed.Seconds(), "msgs/s")
	// CPU time is steadier than the rate on a machine shared with other
	// work; it includes the load generator's (about the same every run).
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(per*conns), "cpu-ns/op")
}

// processCPU is the user + system time the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// jsonPub is one device's QoS 1 PUBLISH of 100 B of Zigbee2MQTT-like JSON,
// its ms timestamp and packet id patched in place.
type jsonPub struct {
	pkt        []byte
	tsAt, idAt int
	baseTs     int64
	id         uint16
	digits     []byte
}

func newJSONPub(dev string) *jsonPub {
	payload := []byte(`{"ts":0000000000000,"temperature":21.5,"humidity":40.25,"battery":97,"linkquality":120,"state":"ON"}`)
	topic := "zigbee2mqtt/" + dev
	pkt := []byte{0x32, byte(2 + len(topic) + 2 + len(payload))}
	pkt = binary.BigEndian.AppendUint16(pkt, uint16(len(topic)))
	pkt = append(pkt, topic...)
	idAt := len(pkt)
	pkt = append(pkt, 0, 0)
	tsAt := len(pkt) + len(`{"ts":`)
	pkt = append(pkt, payload...)
	return &jsonPub{pkt: pkt, tsAt: tsAt, idAt: idAt, baseTs: time.Now().UnixMilli(), digits: make([]byte, 0, 20)}
}

func (p *jsonPub) next(seq int) []byte {
	ts := strconv.AppendInt(p.digits[:0], p.baseTs+int64(seq), 10)
	copy(p.pkt[p.tsAt+13-len(ts):p.tsAt+13], ts)
	if p.id++; p.id == 0 {
		p.id = 1
	}
	binary.BigEndian.PutUint16(p.pkt[p.idAt:], p.id)
	return p.pkt
}

// pipelinePublish sends n publishes keeping up to 32 unacknowledged (the
// gateway's receive maximum) and returns once all are acknowledged.
func pipelinePublish(c net.Conn, p *jsonPub, n int) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	return testkit.PublishWindow(c, n, 32, p.next)
}
