package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// ingestRules is the edge config of the ingest section: the README's
// Zigbee2MQTT rule with a device time taken from the payload, and its
// Sparkplug B rule (JSON rendering on).
const ingestRules = `ingest:
  rules:
    - name: zigbee2mqtt
      match: zigbee2mqtt/{device}
      stream: zigbee2mqtt
      format: json
      time: {field: /ts, unit: ms}
    - name: sparkplug
      match: spBv1.0/{group}/{type}/{node}/{device?}
      stream: plant.{group}
      key: "{node}"
      format: sparkplug-b
      decode: %v
`

// ingestFormats measures the ingest rules (issue 13): generic JSON of 100 B
// at QoS 1 through a rule that takes key and time from the topic and the
// payload, against mosquitto under the same load; and Sparkplug B NDATA
// messages of 10 metrics by alias (each node sends its NBIRTH first), with
// and without the JSON rendering.
func ingestFormats(dir string, quick bool) ([]row, error) {
	mosq, edgeBin, err := mosquittoAndEdge(dir)
	if err != nil {
		return nil, err
	}
	const conns = 100
	per := 10000
	if quick {
		per = 1000
	}
	// $TRIBUTARY_EDGE_PROFILE=PREFIX: as in the edge section (edge.go), the
	// generic JSON load runs 10× longer and PREFIX-ingest-json-cpu.pprof
	// holds 3 s of the edge's CPU profile taken during it (the Sparkplug
	// loads keep their length).
	profile := os.Getenv("TRIBUTARY_EDGE_PROFILE")
	jsonPer := per
	if profile != "" {
		jsonPer *= 10
	}
	var rows []row
	// CPU time per message (user + system, from /proc) says what each
	// broker spends, which a shared machine's load disturbs less than the
	// rates.
	var rates, cpu [2]float64
	for i, kind := range []string{"edge", "mosquitto"} {
		extra := fmt.Sprintf(ingestRules, false)
		if kind == "edge" {
			extra = profileConfig(profile) + extra
		}
		b, err := startMQTTBroker(dir, kind, edgeBin, mosq, extra)
		if err != nil {
			return rows, err
		}
		waitProfile := func() {}
		if profile != "" && kind == "edge" {
			waitProfile = b.profileCPU(profile + "-ingest-json-cpu.pprof")
		}
		pid := b.cmd.Process.Pid
		cpu0 := procCPUTime(pid)
		r0, w0 := procSyscalls(pid)
		rate, err := mqttLoadSource(b.addr, conns, jsonPer, 1, func(i int) packetSource { return newJSONPublisher(fmt.Sprintf("plug-%06d", i)) })
		msgs := float64(conns * jsonPer)
		cpu[i] = float64(procCPUTime(pid)-cpu0) / float64(time.Microsecond) / msgs
		r1, w1 := procSyscalls(pid)
		fmt.Fprintf(os.Stderr, "   %s, generic JSON: %.0f msgs/s, CPU %.2f µs/msg, %.3f reads and %.3f writes per msg\n",
			kind, rate, cpu[i], float64(r1-r0)/msgs, float64(w1-w0)/msgs)
		waitProfile()
		b.stop()
		if err != nil {
			return rows, fmt.Errorf("%s, generic JSON: %w", kind, err)
		}
		rates[i] = rate
	}
	rows = append(rows, row{
		Name:   fmt.Sprintf("edge ingest, generic JSON 100 B, QoS 1, %d conns, rule takes key and time (vs mosquitto)", conns),
		Ours:   fmt.Sprintf("%.0f msgs/s (CPU %.1f µs/msg)", rates[0], cpu[0]),
		Peer:   fmt.Sprintf("%.0f msgs/s (CPU %.1f µs/msg)", rates[1], cpu[1]),
		Ratio:  rates[0] / rates[1],
		Target: "≥ 1.5×",
	})
	const nodes = 100
	for _, decode := range []bool{false, true} {
		for _, qos := range []byte{0, 1} {
			b, err := startMQTTBroker(dir, "edge", edgeBin, mosq, fmt.Sprintf(ingestRules, decode))
			if err != nil {
				return rows, err
			}
			rate, err := mqttLoadSource(b.addr, nodes, per, qos, func(i int) packetSource { return newSparkplugNode(fmt.Sprintf("node-%04d", i), qos) })
			b.stop()
			if err != nil {
				return rows, fmt.Errorf("sparkplug (decode %v, QoS %d): %w", decode, qos, err)
			}
			// The target is on what a sparkplug-b rule stores by
			// default (the protobuf as it came); decode (a JSON rendering of
			// every metric, five times the bytes) is an option, reported.
			what, target := "value protobuf (default)", "≥ 100,000 msgs/s"
			if decode {
				what, target = "decode: JSON value (opt-in)", "reported"
			}
			rows = append(rows, row{
				Name:   fmt.Sprintf("edge ingest, Sparkplug B NDATA, 10 metrics by alias, QoS %d, %d nodes, %s", qos, nodes, what),
				Ours:   fmt.Sprintf("%.0f msgs/s", rate),
				Target: target,
			})
		}
	}
	return rows, nil
}

// packetSource makes one connection's PUBLISH packets; first (may be nil)
// is sent, and acknowledged, before the measured ones.
type packetSource interface {
	first() []byte
	next(seq uint32) []byte
}

// jsonPublisher sends 100 B JSON objects shaped like Zigbee2MQTT's, with a
// fixed-width ms timestamp patched in place (no seq: the edge stores each).
type jsonPublisher struct {
	pkt    []byte
	tsAt   int
	idAt   int
	baseTs int64
	nextID uint16
}

func newJSONPublisher(dev string) *jsonPublisher {
	payload := []byte(`{"ts":0000000000000,"temperature":21.5,"humidity":40.25,"battery":97,"linkquality":120,"state":"ON"}`)
	tsAt := len(`{"ts":`)
	topic := "zigbee2mqtt/" + dev
	var vh []byte
	vh = binary.BigEndian.AppendUint16(vh, uint16(len(topic)))
	vh = append(vh, topic...)
	idAt := len(vh)
	vh = append(vh, 0, 0)
	hdr := append([]byte{0x30 | 1<<1}, mqttRemLen(len(vh)+len(payload))...)
	pkt := append(append(hdr, vh...), payload...)
	return &jsonPublisher{pkt: pkt, tsAt: len(hdr) + len(vh) + tsAt, idAt: len(hdr) + idAt, baseTs: time.Now().UnixMilli()}
}

func (p *jsonPublisher) first() []byte { return nil }

func (p *jsonPublisher) next(seq uint32) []byte {
	ts := strconv.AppendInt(nil, p.baseTs+int64(seq), 10)
	copy(p.pkt[p.tsAt+13-len(ts):p.tsAt+13], ts)
	p.nextID++
	if p.nextID == 0 {
		p.nextID = 1
	}
	binary.BigEndian.PutUint16(p.pkt[p.idAt:], p.nextID)
	return p.pkt
}

// sparkplugNode is one edge node: an NBIRTH defining 10 metrics with
// aliases, then NDATA messages carrying the 10 metrics by alias only, seq
// counting 0–255 as the spec says (256 packets made up front).
type sparkplugNode struct {
	birth  []byte
	data   [256][]byte
	qos    byte
	nextID uint16
}

func newSparkplugNode(node string, qos byte) *sparkplugNode {
	n := &sparkplugNode{qos: qos}
	now := uint64(time.Now().UnixMilli())
	metric := func(name string, alias uint64, v float64) []byte {
		var m []byte
		if name != "" {
			m = protowire.AppendTag(m, 1, protowire.BytesType)
			m = protowire.AppendString(m, name)
		}
		m = protowire.AppendTag(m, 2, protowire.VarintType)
		m = protowire.AppendVarint(m, alias)
		if name != "" {
			m = protowire.AppendTag(m, 4, protowire.VarintType)
			m = protowire.AppendVarint(m, 10) // Double
		}
		m = protowire.AppendTag(m, 13, protowire.Fixed64Type)
		return protowire.AppendFixed64(m, math.Float64bits(v))
	}
	payload := func(seq uint64, names bool) []byte {
		var p []byte
		p = protowire.AppendTag(p, 1, protowire.VarintType)
		p = protowire.AppendVarint(p, now)
		if names { // bdSeq first, as nodes send it
			var m []byte
			m = protowire.AppendTag(m, 1, protowire.BytesType)
			m = protowire.AppendString(m, "bdSeq")
			m = protowire.AppendTag(m, 4, protowire.VarintType)
			m = protowire.AppendVarint(m, 4) // Int64
			m = protowire.AppendTag(m, 11, protowire.VarintType)
			m = protowire.AppendVarint(m, 0)
			p = protowire.AppendTag(p, 2, protowire.BytesType)
			p = protowire.AppendBytes(p, m)
		}
		for a := uint64(1); a <= 10; a++ {
			name := ""
			if names {
				name = "sensor/" + strconv.FormatUint(a, 10)
			}
			p = protowire.AppendTag(p, 2, protowire.BytesType)
			p = protowire.AppendBytes(p, metric(name, a, 20+float64(a)+float64(seq)/100))
		}
		p = protowire.AppendTag(p, 3, protowire.VarintType)
		return protowire.AppendVarint(p, seq)
	}
	publish := func(topic string, p []byte, qos byte) []byte {
		var vh []byte
		vh = binary.BigEndian.AppendUint16(vh, uint16(len(topic)))
		vh = append(vh, topic...)
		if qos > 0 {
			vh = append(vh, 0, 0)
		}
		hdr := append([]byte{0x30 | qos<<1}, mqttRemLen(len(vh)+len(p))...)
		return append(append(hdr, vh...), p...)
	}
	n.birth = publish("spBv1.0/bench/NBIRTH/"+node, payload(0, true), 1)
	for s := range n.data {
		n.data[s] = publish("spBv1.0/bench/NDATA/"+node, payload(uint64(s), false), qos)
	}
	return n
}

func (n *sparkplugNode) first() []byte {
	n.setID(n.birth)
	return n.birth
}

func (n *sparkplugNode) setID(pkt []byte) {
	n.nextID++
	if n.nextID == 0 {
		n.nextID = 1
	}
	// the packet id follows the topic: fixed header, length, topic
	i := 1
	for pkt[i]&0x80 != 0 {
		i++
	}
	i++
	tl := int(binary.BigEndian.Uint16(pkt[i:]))
	binary.BigEndian.PutUint16(pkt[i+2+tl:], n.nextID)
}

// next returns NDATA seq+1 (the birth had seq 0).
func (n *sparkplugNode) next(seq uint32) []byte {
	pkt := n.data[(seq+1)%256]
	if n.qos > 0 {
		n.setID(pkt)
	}
	return pkt
}

// mqttLoadSource is mqttLoad with the packets of src: each connection's
// first packet (QoS 1) is acknowledged before the clock starts.
func mqttLoadSource(addr string, conns, per int, qos byte, src func(i int) packetSource) (float64, error) {
	cs, err := mqttConnectAll(addr, "ingest", conns)
	if err != nil {
		return 0, err
	}
	defer closeConns(cs)
	srcs := make([]packetSource, conns)
	for i, c := range cs {
		srcs[i] = src(i)
		if f := srcs[i].first(); f != nil {
			if _, err := c.Write(f); err != nil {
				return 0, err
			}
			if err := mqttReadAcks(c, 1); err != nil {
				return 0, fmt.Errorf("first publish of %d: %w", i, err)
			}
		}
	}
	// A QoS 1 fence ends a QoS 0 run (see sendLoad).
	fence := newJSONPublisher("fence").next(0)
	return timeLoad(cs, per, func(i int, c net.Conn) error {
		return sendLoad(c, per, qos, srcs[i].next, fence)
	})
}
