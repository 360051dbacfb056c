package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"
)

// mosquittoFloor is the MQTT-only floor of the end-to-end rows: the same
// paced fleet publishes QoS 1 readings to Debian's mosquitto (no
// persistence: it stores nothing) and one subscriber receives them; latency
// is receive time − send time, as in e2eRun. The gap between this row and
// e2e is what durability (fsync on the edge and the core) and the Kafka hop
// cost.
func mosquittoFloor(dir string, quick bool, devices int) (row, error) {
	const perDevice = 10
	warmup, measure := 3*time.Second, 30*time.Second
	if quick {
		measure = 8 * time.Second
	}
	mosq, err := exec.LookPath("mosquitto")
	if err != nil {
		return row{}, fmt.Errorf("mosquitto not installed (apt-get install -y mosquitto): %w", err)
	}
	b, err := startMQTTBroker(dir, "mosquitto", "", mosq, "")
	if err != nil {
		return row{}, err
	}
	defer b.stop()
	sub, err := mqttConnect(b.addr, "floor-subscriber")
	if err != nil {
		return row{}, err
	}
	defer sub.Close()
	if err := mqttSubscribe(sub, "sensors/#"); err != nil {
		return row{}, err
	}
	fleet, err := startTrackedFleet(b.addr, "e2e", devices, perDevice, warmup+measure+5*time.Second)
	if err != nil {
		return row{}, err
	}
	measureFrom := fleet.start.Add(warmup)
	var (
		mu       sync.Mutex
		lat      []time.Duration
		received int64
	)
	done := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(sub, 64<<10)
		for {
			topic, payload, err := readPublish(r)
			if err != nil {
				done <- err
				return
			}
			now := time.Now()
			dev := topicDevice(topic)
			seq, ok := readingSeq(payload)
			mu.Lock()
			received++
			if sent, tracked := fleet.sentTime(dev, seq); ok && tracked && !sent.Before(measureFrom) {
				lat = append(lat, now.Sub(sent))
			}
			mu.Unlock()
		}
	}()
	fmt.Fprintf(os.Stderr, "   floor: mosquitto, %d devices × %d QoS 1 msgs/s, %v warm-up + %v measured\n", devices, perDevice, warmup, measure)
	time.Sleep(time.Until(fleet.start.Add(warmup + measure)))
	elapsed := time.Since(fleet.start)
	ferr := fleet.stop()
	acked := fleet.acked.Load()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := received
		mu.Unlock()
		if n >= acked {
			break
		}
	}
	sub.Close()
	if err := <-done; ferr == nil && err != nil && !isClosed(err) {
		ferr = err
	}
	if ferr != nil {
		return row{}, ferr
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		return row{}, fmt.Errorf("no readings in the measured window")
	}
	slices.Sort(lat)
	rate := float64(acked) / elapsed.Seconds()
	fmt.Fprintf(os.Stderr, "   floor (%d devices): %d acked, %d received; %s\n", devices, acked, received, latencyCell(lat, rate))
	return row{
		Name:   fmt.Sprintf("MQTT-only floor: %d devices × %d QoS 1 msgs/s → mosquitto (no persistence) → 1 subscriber (%d readings)", devices, perDevice, len(lat)),
		Ours:   "—",
		Peer:   latencyCell(lat, rate),
		Target: "reported",
	}, nil
}

func isClosed(err error) bool {
	var ne *net.OpError
	return errors.Is(err, io.EOF) || errors.As(err, &ne)
}

// mqttSubscribe subscribes c to filter at QoS 0 and waits for the SUBACK.
func mqttSubscribe(c net.Conn, filter string) error {
	body := []byte{0, 1} // packet id
	body = binary.BigEndian.AppendUint16(body, uint16(len(filter)))
	body = append(append(body, filter...), 0)
	pk := append([]byte{0x82}, mqttRemLen(len(body))...)
	if _, err := c.Write(append(pk, body...)); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var ack [5]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return fmt.Errorf("suback: %w", err)
	}
	if ack[0] != 0x90 || ack[4] > 2 {
		return fmt.Errorf("subscribe refused: % x", ack)
	}
	return nil
}

// readPublish reads packets until a PUBLISH and returns its topic and
// payload (QoS 0 deliveries: no packet id).
func readPublish(r *bufio.Reader) (string, []byte, error) {
	for {
		typ, err := r.ReadByte()
		if err != nil {
			return "", nil, err
		}
		n, err := readRemLen(r)
		if err != nil {
			return "", nil, err
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return "", nil, err
		}
		if typ>>4 != 3 || len(body) < 2 {
			continue
		}
		tl := int(binary.BigEndian.Uint16(body))
		if 2+tl > len(body) {
			return "", nil, fmt.Errorf("publish with a %d-byte topic in a %d-byte packet", tl, len(body))
		}
		off := 2 + tl
		if (typ>>1)&3 > 0 {
			off += 2
		}
		return string(body[2 : 2+tl]), body[off:], nil
	}
}

func readRemLen(r *bufio.Reader) (int, error) {
	n, mul := 0, 1
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n += int(b&127) * mul
		if b&128 == 0 {
			return n, nil
		}
		mul *= 128
	}
	return 0, fmt.Errorf("malformed remaining length")
}

// topicDevice is <device> of sensors/<device>/reading.
func topicDevice(topic string) string {
	start := len("sensors/")
	if len(topic) <= start {
		return ""
	}
	for i := start; i < len(topic); i++ {
		if topic[i] == '/' {
			return topic[start:i]
		}
	}
	return topic[start:]
}
