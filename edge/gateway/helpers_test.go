package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/internal/testkit/rawmqtt"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// testConfig is a gateway on loopback port 0 in a temp dir.
func testConfig(t testing.TB) Config {
	cfg := Defaults()
	cfg.DataDir = t.TempDir()
	cfg.MQTT.Address = "127.0.0.1:0"
	cfg.HTTP.Address = "127.0.0.1:0"
	cfg.Auth.AllowAnonymous = true
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

// startGateway runs a gateway until the test ends (or stop is called);
// stop waits for the graceful shutdown.
func startGateway(t *testing.T, cfg Config) (g *Gateway, stop func()) {
	t.Helper()
	g, err := Open(cfg, testkit.Logger(t))
	if err != nil {
		t.Fatalf("open gateway: %v", err)
	}
	return g, testkit.Run(t, "gateway", g.Run)
}

// inParallel runs f(0) … f(n-1), each on its own goroutine, and returns
// their errors joined once all have returned (nil when none failed).
func inParallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// storedRecord is a record read back from a partition log.
type storedRecord struct {
	recordbatch.Record
	Partition int32
}

// readStream reads every record of a stream from a running gateway's logs.
func readStream(t *testing.T, topics *storage.Topics, stream string) []storedRecord {
	t.Helper()
	info, ok := topics.Get(stream)
	if !ok {
		return nil
	}
	var out []storedRecord
	for p := int32(0); p < info.Partitions; p++ {
		l, err := topics.Partition(stream, p)
		if err != nil {
			t.Fatalf("partition %s-%d: %v", stream, p, err)
		}
		for _, r := range testkit.LogRecords(t, l) {
			out = append(out, storedRecord{r, p})
		}
	}
	return out
}

// readStreamOffline opens a stopped gateway's data dir and reads a stream.
func readStreamOffline(t *testing.T, dataDir, stream string) []storedRecord {
	t.Helper()
	store, err := meta.Open(filepath.Join(dataDir, "meta.db"))
	if err != nil {
		t.Fatalf("open meta: %v", err)
	}
	defer store.Close()
	topics, err := storage.OpenTopics(filepath.Join(dataDir, "logs"), store, storage.LogConfig{}, testkit.Logger(t))
	if err != nil {
		t.Fatalf("open topics: %v", err)
	}
	defer topics.Close()
	return readStream(t, topics, stream)
}

// waitRecords polls until a stream holds n records (QoS 0 publishes give no
// completion signal) or 10 s pass.
func waitRecords(t *testing.T, topics *storage.Topics, stream string, n int) []storedRecord {
	t.Helper()
	var recs []storedRecord
	testkit.Poll(10*time.Second, func() bool {
		recs = readStream(t, topics, stream)
		return len(recs) >= n
	})
	return recs
}

func header(r recordbatch.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// rawClient speaks just enough MQTT (3.1.1 or 5) over a real TCP connection
// to see exactly which acknowledgement, with which reason code, the gateway
// sends — or that it sends none. paho.mqtt.golang hides both.
type rawClient struct {
	t       testing.TB
	conn    net.Conn
	r       *bufio.Reader
	version byte
	nextID  uint16
}

var errNoAck = rawmqtt.ErrNoPacket

func dialRaw(t testing.TB, addr string, version byte, clientID, user, pass string) (*rawClient, byte, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, 0, fmt.Errorf("dial: %w", err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), version: version}
	code, err := rawmqtt.Connect(conn, c.r, version, clientID, true, user, pass)
	if err != nil {
		return nil, 0, err
	}
	return c, code, nil
}

// connectRaw is dialRaw for an anonymous connection the test needs: it
// fails the test unless the gateway accepts it (CONNACK code 0).
func connectRaw(t testing.TB, addr string, version byte, clientID string) *rawClient {
	t.Helper()
	c, code, err := dialRaw(t, addr, version, clientID, "", "")
	if err != nil || code != 0 {
		t.Fatalf("connect %s (protocol %d): code %#x err %v", clientID, version, code, err)
	}
	return c
}

func (c *rawClient) read(timeout time.Duration) (packets.FixedHeader, []byte, error) {
	return rawmqtt.Read(c.conn, c.r, timeout)
}

// publish sends one PUBLISH and, for QoS > 0, waits up to wait for the
// acknowledgement, completing the QoS 2 flow. It returns the reason code of
// the PUBACK/PUBREC, or errNoAck, or the connection error.
func (c *rawClient) publish(topic string, payload []byte, qos byte, contentType string, wait time.Duration) (byte, error) {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, ProtocolVersion: c.version,
		TopicName: topic, Payload: payload, PacketID: c.nextID}
	if qos == 0 {
		pk.PacketID = 0
	}
	pk.Properties.ContentType = contentType
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		return 0, err
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		return 0, fmt.Errorf("write publish: %w", err)
	}
	if qos == 0 {
		return 0, nil
	}
	fh, body, err := c.read(wait)
	if err != nil {
		return 0, err
	}
	code := byte(0)
	if len(body) > 2 {
		code = body[2]
	}
	if qos == 1 {
		if fh.Type != packets.Puback {
			return 0, fmt.Errorf("want puback, got type %d", fh.Type)
		}
		return code, nil
	}
	if fh.Type != packets.Pubrec {
		return 0, fmt.Errorf("want pubrec, got type %d", fh.Type)
	}
	rel := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, ProtocolVersion: c.version, PacketID: pk.PacketID}
	buf.Reset()
	if err := rel.PubrelEncode(&buf); err != nil {
		return 0, err
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		return 0, fmt.Errorf("write pubrel: %w", err)
	}
	if fh, _, err = c.read(wait); err != nil {
		return 0, fmt.Errorf("read pubcomp: %w", err)
	}
	if fh.Type != packets.Pubcomp {
		return 0, fmt.Errorf("want pubcomp, got type %d", fh.Type)
	}
	return code, nil
}
