package gateway

import (
	"crypto/tls"
	"os"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tributary-io/tributary/edge/auth"
	"github.com/tributary-io/tributary/internal/testkit"
)

// TestDeviceIdentityFromCertificate: with auth.cert_identity "cn" and a
// client CA on the TLS listener, device d1 logs in with its certificate
// alone (no username, no password) and publishes under its own prefix;
// a certificate naming an unconfigured device is refused, and so is a
// password login for the certificate-only device.
func TestDeviceIdentityFromCertificate(t *testing.T) {
	t.Parallel()
	ca := testkit.NewCA(t, "edge test CA")
	certFile, keyFile := ca.ServerFiles(t, "edge")
	cfg := testConfig(t)
	cfg.MQTT.TLS = TLSConfig{Address: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.File}
	cfg.Auth = auth.Config{CertIdentity: "cn", Devices: []auth.Device{{Username: "d1"}}}
	g, _ := startGateway(t, cfg)

	connect := func(cn, user, pass, addr string) (paho.Client, error) {
		tc := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
		if cn != "" {
			leaf, err := ca.Client(cn, time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			cert, err := leaf.TLS()
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		o := paho.NewClientOptions().AddBroker(addr).SetClientID("c-" + cn + user).SetAutoReconnect(false).
			SetConnectTimeout(5 * time.Second).SetTLSConfig(tc).SetUsername(user).SetPassword(pass)
		c := paho.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(5 * time.Second) {
			return nil, os.ErrDeadlineExceeded
		}
		return c, tok.Error()
	}
	c, err := connect("d1", "", "", "tls://"+g.TLSAddr())
	if err != nil {
		t.Fatalf("certificate login: %v", err)
	}
	pt := c.Publish("sensors/d1/r", 1, false, jsonReading("d1", 0, 1))
	if !pt.WaitTimeout(5*time.Second) || pt.Error() != nil {
		t.Fatalf("publish: %v", pt.Error())
	}
	c.Disconnect(50)
	if recs := readStream(t, g.Topics(), "sensors"); len(recs) != 1 {
		t.Fatalf("stored %d records, want 1", len(recs))
	}
	if _, err := connect("d2", "", "", "tls://"+g.TLSAddr()); err == nil {
		t.Fatal("certificate of an unconfigured device accepted")
	}
	if _, err := connect("d1", "d3", "", "tls://"+g.TLSAddr()); err == nil {
		t.Fatal("username differing from the certificate accepted")
	}
	if _, err := connect("", "d1", "anything", "tcp://"+g.MQTTAddr()); err == nil {
		t.Fatal("password login of a certificate-only device accepted")
	}
}
