package gateway

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tributary-io/tributary/edge/auth"
	"github.com/tributary-io/tributary/internal/testkit"
)

// startWithAllListeners starts a gateway with the TLS and WebSocket
// listeners on too; pool trusts its certificate.
func startWithAllListeners(t *testing.T) (g *Gateway, cfg Config, pool *x509.CertPool) {
	cfg = testConfig(t)
	certs := testkit.ServerCerts(t)
	certFile, keyFile, pool := certs.CertFile, certs.KeyFile, certs.Pool
	cfg.MQTT.TLS = TLSConfig{Address: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}
	cfg.MQTT.WebSocketAddress = testkit.FreeAddr(t)
	g, _ = startGateway(t, cfg)
	return g, cfg, pool
}

// TestTLSAndWebSocketListeners publishes through the optional listeners.
func TestTLSAndWebSocketListeners(t *testing.T) {
	t.Parallel()
	g, cfg, pool := startWithAllListeners(t)
	for i, url := range []string{"tls://" + g.TLSAddr(), "ws://" + cfg.MQTT.WebSocketAddress + "/"} {
		o := paho.NewClientOptions().AddBroker(url).SetClientID(url).SetAutoReconnect(false).
			SetConnectTimeout(5 * time.Second).SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		c := paho.NewClient(o)
		var tok paho.Token
		connected := testkit.Poll(5*time.Second, func() bool { // the WebSocket listener starts serving asynchronously
			tok = c.Connect()
			return tok.WaitTimeout(5*time.Second) && tok.Error() == nil
		})
		if !connected {
			t.Fatalf("connect %s: %v", url, tok.Error())
		}
		pt := c.Publish("sensors/d1/r", 1, false, jsonReading("d1", uint64(i), 1))
		if !pt.WaitTimeout(5*time.Second) || pt.Error() != nil {
			t.Fatalf("publish over %s: %v", url, pt.Error())
		}
		c.Disconnect(50)
	}
	if recs := readStream(t, g.Topics(), "sensors"); len(recs) != 2 {
		t.Fatalf("stored %d records, want 2", len(recs))
	}
}

// TestQoS2RetransmitStoredOnce: a QoS 2 PUBLISH resent (DUP) before PUBREL
// is not stored a second time.
func TestQoS2RetransmitStoredOnce(t *testing.T) {
	t.Parallel()
	g, _ := startGateway(t, testConfig(t))
	c := connectRaw(t, g.MQTTAddr(), 4, "q2")
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}, ProtocolVersion: 4,
		TopicName: "sensors/d1/r", Payload: jsonReading("d1", 1, 1), PacketID: 7}
	send := func(p packets.Packet, enc func(*packets.Packet, *bytes.Buffer) error) {
		var buf bytes.Buffer
		if err := enc(&p, &buf); err != nil {
			t.Fatal(err)
		}
		if _, err := c.conn.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		send(pk, (*packets.Packet).PublishEncode)
		fh, _, err := c.read(5 * time.Second)
		if err != nil || fh.Type != packets.Pubrec {
			t.Fatalf("attempt %d: want PUBREC, got type %d err %v", i, fh.Type, err)
		}
		pk.FixedHeader.Dup = true
	}
	send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, ProtocolVersion: 4, PacketID: 7}, (*packets.Packet).PubrelEncode)
	if fh, _, err := c.read(5 * time.Second); err != nil || fh.Type != packets.Pubcomp {
		t.Fatalf("want PUBCOMP, got type %d err %v", fh.Type, err)
	}
	if recs := readStream(t, g.Topics(), "sensors"); len(recs) != 1 {
		t.Fatalf("stored %d records, want 1", len(recs))
	}
}

// TestSubscribeACL: a device subscribes only under its own prefix; a
// read_all login (a local consumer) subscribes to everything and receives.
func TestSubscribeACL(t *testing.T) {
	t.Parallel()
	cfg := authConfig(t)
	cfg.Auth.Devices = append(cfg.Auth.Devices, auth.Device{Username: "dash", PasswordHash: bcryptHash(t, "pw-d"), ReadAll: true})
	g, _ := startGateway(t, cfg)
	subResult := func(c paho.Client, filter string) byte {
		tok := c.Subscribe(filter, 1, func(paho.Client, paho.Message) {})
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("subscribe %s: timeout", filter)
		}
		return tok.(*paho.SubscribeToken).Result()[filter]
	}
	dev := connectPaho(t, g.MQTTAddr(), "dev1-sub", "dev-1", "pw-1")
	if r := subResult(dev, "sensors/dev-1/#"); r != 1 {
		t.Fatalf("own prefix: SUBACK %#x, want granted QoS 1", r)
	}
	for _, f := range []string{"sensors/#", "sensors/+/reading", "sensors/dev-2/reading"} {
		if r := subResult(dev, f); r != 0x80 {
			t.Fatalf("%s: SUBACK %#x, want failure 0x80", f, r)
		}
	}
	dash := connectPaho(t, g.MQTTAddr(), "dash", "dash", "pw-d")
	got := make(chan string, 10)
	tok := dash.Subscribe("sensors/#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() })
	if !tok.WaitTimeout(5*time.Second) || tok.(*paho.SubscribeToken).Result()["sensors/#"] != 1 {
		t.Fatal("read_all login could not subscribe to sensors/#")
	}
	pub := connectPaho(t, g.MQTTAddr(), "dev2-pub", "dev-2", "pw-2")
	if tok := pub.Publish("sensors/dev-2/reading", 1, false, jsonReading("dev-2", 0, 1)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case topic := <-got:
		if topic != "sensors/dev-2/reading" {
			t.Fatalf("dashboard got %s", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("dashboard did not receive the reading")
	}
}
