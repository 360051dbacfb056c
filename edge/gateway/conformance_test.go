package gateway

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tributary-io/tributary/edge/ingest"
	"github.com/tributary-io/tributary/internal/testkit"
)

// dialPaho5 connects an Eclipse paho.golang (MQTT 5) client; conn is its
// TCP connection, for tests that cut it.
func dialPaho5(t *testing.T, addr, id string, cp *paho5.Connect) (*paho5.Client, *paho5.Connack, net.Conn) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	c := paho5.NewClient(paho5.ClientConfig{ClientID: id, Conn: conn})
	if cp == nil {
		cp = &paho5.Connect{}
	}
	cp.ClientID, cp.CleanStart, cp.KeepAlive = id, true, 30
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		t.Fatalf("paho.golang connect: %v", err)
	}
	return c, ca, conn
}

func publish5(t *testing.T, c *paho5.Client, p *paho5.Publish) *paho5.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil {
		t.Fatalf("publish %s: %v", p.Topic, err)
	}
	return r
}

// TestPubackWithUserPropertiesAfterSubscribe: once a client has subscribed
// (acknowledgements then come from mochi's read loop), a QoS 1 publish with
// MQTT 5 user properties is answered with a plain PUBACK (reason 0, no
// echoed properties), the client goes on publishing, and the properties
// arrive as record headers.
func TestPubackWithUserPropertiesAfterSubscribe(t *testing.T) {
	t.Parallel()
	g, _ := startGateway(t, testConfig(t))
	sub := connectPaho(t, g.MQTTAddr(), "sub", "", "")
	if tok := sub.Subscribe("#", 1, func(paho.Client, paho.Message) {}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	c, _, _ := dialPaho5(t, g.MQTTAddr(), "props", nil)
	for i := 0; i < 5; i++ {
		r := publish5(t, c, &paho5.Publish{Topic: "sensors/d1/r", QoS: 1, Payload: jsonReading("d1", uint64(i), 1000+int64(i)),
			Properties: &paho5.PublishProperties{User: paho5.UserProperties{{Key: "k", Value: "v"}, {Key: "site", Value: "north"}}}})
		if r.ReasonCode != 0 || (r.Properties != nil && len(r.Properties.User) != 0) {
			t.Fatalf("publish %d: PUBACK reason %#x properties %+v", i, r.ReasonCode, r.Properties)
		}
	}
	recs := waitRecords(t, g.Topics(), "sensors", 5)
	for _, r := range recs {
		if mustHeader(t, r, "k") != "v" || mustHeader(t, r, "site") != "north" {
			t.Fatalf("user properties not in headers: %+v", r.Headers)
		}
	}
	// mosquitto_pub's MQTT 5 user properties too, on the deferred path.
	if bin, err := exec.LookPath("mosquitto_pub"); err == nil {
		g2, _ := startGateway(t, testConfig(t))
		if err := mosquittoPub(t, bin, g2.MQTTAddr(), "-V", "mqttv5", "-q", "1", "-t", "tele/plug-1/SENSOR",
			"-D", "publish", "user-property", "fw", "tasmota-14", "-m", `{"ENERGY":{"Power":42}}`); err != nil {
			t.Fatal(err)
		}
		if r := waitRecords(t, g2.Topics(), "tele", 1)[0]; mustHeader(t, r, "fw") != "tasmota-14" {
			t.Fatalf("mosquitto_pub user property not in headers: %+v", r.Headers)
		}
	}
}

// TestWillStored: a will is stored like a publish to its topic (Tasmota's
// retained LWT "Offline"), with its MQTT 5 content type.
func TestWillStored(t *testing.T) {
	t.Parallel()
	g, _ := startGateway(t, testConfig(t))
	_, _, conn := dialPaho5(t, g.MQTTAddr(), "tasmota_1", &paho5.Connect{
		WillMessage:    &paho5.WillMessage{Topic: "tele/tasmota_1/LWT", Payload: []byte("Offline"), QoS: 1, Retain: true},
		WillProperties: &paho5.WillProperties{ContentType: "text/plain"},
	})
	conn.Close() // no DISCONNECT: the will goes out
	// And a 3.1.1 will from paho.mqtt.golang, killed the same way.
	o := paho.NewClientOptions().AddBroker("tcp://"+g.MQTTAddr()).SetClientID("plug-2").SetAutoReconnect(false).
		SetWill("tele/plug-2/LWT", "Offline", 1, true).SetKeepAlive(30 * time.Second)
	var killed atomic.Pointer[net.Conn]
	o.SetCustomOpenConnectionFn(func(uri *url.URL, _ paho.ClientOptions) (net.Conn, error) {
		c, err := net.Dial("tcp", uri.Host)
		if err == nil {
			killed.Store(&c)
		}
		return c, err
	})
	pc := paho.NewClient(o)
	if tok := pc.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect: %v", tok.Error())
	}
	(*killed.Load()).Close()
	recs := waitRecords(t, g.Topics(), "tele", 2)
	byKey := map[string]storedRecord{}
	for _, r := range recs {
		byKey[string(r.Key)] = r
	}
	if r, ok := byKey["tasmota_1"]; !ok || string(r.Value) != "Offline" || mustHeader(t, r, "content-type") != "text/plain" {
		t.Fatalf("MQTT 5 will: %+v", recs)
	}
	if r, ok := byKey["plug-2"]; !ok || string(r.Value) != "Offline" || mustHeader(t, r, "mqtt-topic") != "tele/plug-2/LWT" {
		t.Fatalf("3.1.1 will: %+v", recs)
	}
}

// TestQoS2BurstMQTT311: a 3.1.1 client may have any number of QoS 2
// publishes unacknowledged (the protocol has no receive maximum); mochi used
// to send it a DISCONNECT after 32.
func TestQoS2BurstMQTT311(t *testing.T) {
	t.Parallel()
	g, _ := startGateway(t, testConfig(t))
	c := connectPaho(t, g.MQTTAddr(), "burst", "", "")
	const n = 200
	toks := make([]paho.Token, n)
	for i := range toks {
		toks[i] = c.Publish("sensors/b1/r", 2, false, jsonReading("b1", uint64(i), 5000+int64(i)))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v (connected %v)", i, tok.Error(), c.IsConnected())
		}
	}
	if !c.IsConnected() {
		t.Fatal("client disconnected by the burst")
	}
	if recs := waitRecords(t, g.Topics(), "sensors", n); len(recs) != n {
		t.Fatalf("stored %d of %d", len(recs), n)
	}
}

// TestMaximumPacketSize: MQTT 5 CONNACK advertises the packet limit (so
// paho.golang refuses to send more), and a client that sends more anyway
// gets DISCONNECT 0x95 before the connection closes.
func TestMaximumPacketSize(t *testing.T) {
	t.Parallel()
	g, _ := startGateway(t, testConfig(t))
	want := uint32(64<<10 + 4096)
	c, ca, _ := dialPaho5(t, g.MQTTAddr(), "big", nil)
	if ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != want {
		t.Fatalf("CONNACK maximum packet size %+v, want %d", ca.Properties, want)
	}
	// paho.golang sends it and waits for a PUBACK that never comes: a
	// second is as good as five for seeing that none does.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, &paho5.Publish{Topic: "sensors/big/r", QoS: 1, Payload: make([]byte, 100<<10)}); err == nil {
		t.Fatal("paho.golang sent a packet over the advertised maximum")
	}
	raw := connectRaw(t, g.MQTTAddr(), 5, "raw-big")
	if _, err := raw.publish("sensors/big/r", bytes.Repeat([]byte{'x'}, 100<<10), 1, "", 5*time.Second); err == nil {
		t.Fatal("100 KiB publish acknowledged")
	}
	// The DISCONNECT came before the close: publish reads it as the answer.
	raw2, _, _ := dialRaw(t, g.MQTTAddr(), 5, "raw-big2", "", "")
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		TopicName: "sensors/big/r", Payload: make([]byte, 100<<10), PacketID: 1}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	_, _ = raw2.conn.Write(buf.Bytes())
	fh, body, err := raw2.read(5 * time.Second)
	if err != nil || fh.Type != packets.Disconnect || len(body) < 1 || body[0] != 0x95 {
		t.Fatalf("want DISCONNECT 0x95, got type %d body %x err %v", fh.Type, body, err)
	}
	if n := len(readStream(t, g.Topics(), "sensors")); n != 0 {
		t.Fatalf("%d oversized records stored", n)
	}
}

// TestEmptyRetainedAndStandardSenML, with mosquitto_pub: an empty retained
// publish (clearing a retained message) is acknowledged and not stored (no
// dead letter); an RFC 8428 pack without seq is stored with its time; a
// username that is no configured device connects anonymously.
func TestEmptyRetainedAndStandardSenML(t *testing.T) {
	t.Parallel()
	bin := needMosquittoPub(t)
	g, _ := startGateway(t, testConfig(t))
	for _, v := range []string{"mqttv311", "mqttv5"} {
		if err := mosquittoPub(t, bin, g.MQTTAddr(), "-V", v, "-q", "1", "-r", "-n", "-t", "sensors/d1/config"); err != nil {
			t.Fatalf("%s empty retained: %v", v, err)
		}
	}
	pack := `[{"bn":"urn:dev:ow:10e2073a01080063:","bt":1.276020076001e+09,"n":"temperature","u":"Cel","v":23.1},{"n":"humidity","u":"%RH","v":67}]`
	if err := mosquittoPub(t, bin, g.MQTTAddr(), "-q", "1", "-u", "dev-9", "-t", "sensors/dev-9/senml", "-m", pack); err != nil {
		t.Fatalf("standard SenML with a username and no password: %v", err)
	}
	recs := waitRecords(t, g.Topics(), "sensors", 1)
	if len(recs) != 1 || recs[0].Timestamp != 1276020076001 || string(recs[0].Key) != "dev-9" ||
		mustHeader(t, recs[0], "content-type") != "application/senml+json" {
		t.Fatalf("SenML record %+v", recs)
	}
	if n := len(readStream(t, g.Topics(), "sensors.dlq")); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
	if got := g.Ingest().Counts().RetainedClears; got != 2 {
		t.Fatalf("retained clears counted %v, want 2", got)
	}
}

var _ = os.Getenv
var _ = filepath.Join
var _ = strings.Contains

// TestWillAtShutdownCounted: the wills mochi fires as the stopping gateway
// disconnects its clients cannot be stored any more; they are counted as
// refused while closing, not dropped without a trace.
func TestWillAtShutdownCounted(t *testing.T) {
	t.Parallel()
	g, stop := startGateway(t, testConfig(t))
	dialPaho5(t, g.MQTTAddr(), "tasmota_2", &paho5.Connect{
		WillMessage: &paho5.WillMessage{Topic: "tele/tasmota_2/LWT", Payload: []byte("Offline"), QoS: 1, Retain: true},
	})
	stop()
	// mochi fires the will from the client's goroutine, which may end
	// after the server's Close has returned.
	counted := testkit.Poll(5*time.Second, func() bool { return g.Ingest().Counts().Refused[ingest.ReasonClosing] == 1 })
	if !counted {
		t.Fatalf("wills refused while closing: %v, want 1", g.Ingest().Counts().Refused[ingest.ReasonClosing])
	}
}
