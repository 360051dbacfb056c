package server

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/tributary-io/tributary/internal/testkit"
)

func saslHandshake(v int16, mech string) *kmsg.SASLHandshakeRequest {
	r := kmsg.NewPtrSASLHandshakeRequest()
	r.Version, r.Mechanism = v, mech
	return r
}

// saslAuthenticateRefused sends a SaslAuthenticate (version v) with token
// on c and expects the broker to answer with want and close the connection.
func saslAuthenticateRefused(t *testing.T, c *rawConn, v int16, token string, want *kerr.Error) {
	t.Helper()
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version, req.SASLAuthBytes = v, []byte(token)
	if resp := c.roundTrip(req).(*kmsg.SASLAuthenticateResponse); resp.ErrorCode != want.Code {
		t.Fatalf("got error %d, want %s", resp.ErrorCode, want.Message)
	}
	c.expectClosed()
}

// dialTLSRaw is dialRaw over TLS.
func dialTLSRaw(t *testing.T, addr string, cfg *tls.Config) *rawConn {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// TestSecureBadInput sends what a broken or hostile client might on the
// secured listeners; each gets Kafka's error or a closed connection,
// counted in a metric, while a well-behaved client keeps being served.
func TestSecureBadInput(t *testing.T) {
	t.Parallel()
	e := startSecure(t)
	ctx := testkit.Context(t, 30*time.Second)
	good := e.client(t, plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism())
	failures := func(reason string) float64 {
		return testutil.ToFloat64(e.srv.sec.m.authFailed.WithLabelValues(reason))
	}

	t.Run("request before authentication", func(t *testing.T) {
		c := dialRaw(t, e.saslPlain)
		if resp := c.roundTrip(apiVersions(3)).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
			t.Fatalf("ApiVersions before auth: %d", resp.ErrorCode)
		}
		before := failures("state")
		c.send(kmsg.NewPtrMetadataRequest())
		c.expectClosed()
		if failures("state") != before+1 {
			t.Fatalf("state failures not counted")
		}
	})
	t.Run("SaslAuthenticate before the handshake", func(t *testing.T) {
		c := dialRaw(t, e.saslPlain)
		saslAuthenticateRefused(t, c, 1, "\x00admin\x00admin-secret", kerr.IllegalSaslState)
	})
	t.Run("unknown mechanism", func(t *testing.T) {
		c := dialRaw(t, e.saslPlain)
		resp := c.roundTrip(saslHandshake(1, "GSSAPI")).(*kmsg.SASLHandshakeResponse)
		if resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code || len(resp.SupportedMechanisms) != 3 {
			t.Fatalf("got %d %v, want UNSUPPORTED_SASL_MECHANISM with 3 mechanisms", resp.ErrorCode, resp.SupportedMechanisms)
		}
		c.expectClosed()
	})
	t.Run("wrong password", func(t *testing.T) {
		c := dialRaw(t, e.saslPlain)
		c.roundTrip(saslHandshake(1, "PLAIN"))
		saslAuthenticateRefused(t, c, 2, "\x00admin\x00guess", kerr.SaslAuthenticationFailed)
	})
	t.Run("huge token", func(t *testing.T) {
		c := dialRaw(t, e.saslPlain)
		c.roundTrip(saslHandshake(1, "PLAIN"))
		big := make([]byte, 8<<20)
		before := failures("token_size")
		c.write(binary.BigEndian.AppendUint32(nil, uint32(len(big))))
		_, _ = c.nc.Write(big[:1<<16]) // the broker closes before reading the rest
		c.expectClosed()
		testkit.Eventually(t, 10*time.Second, "a token_size failure counted", func() bool { return failures("token_size") > before })
	})
	t.Run("v0 raw tokens", func(t *testing.T) {
		c := dialRaw(t, e.saslPlain)
		if resp := c.roundTrip(saslHandshake(0, "PLAIN")).(*kmsg.SASLHandshakeResponse); resp.ErrorCode != 0 {
			t.Fatalf("handshake v0: %d", resp.ErrorCode)
		}
		c.write(sizePrefixed([]byte("\x00admin\x00admin-secret")))
		var sz [4]byte
		if _, err := io.ReadFull(c.br, sz[:]); err != nil || binary.BigEndian.Uint32(sz[:]) != 0 {
			t.Fatalf("raw PLAIN answer: %v %v", err, sz)
		}
		if resp := c.roundTrip(kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
			t.Fatalf("metadata after v0 login: %+v", resp)
		}
	})
	t.Run("plaintext on the TLS port", func(t *testing.T) {
		c := dialRaw(t, e.saslSSL)
		before := failures("tls")
		c.send(apiVersions(3))
		c.expectClosed()
		testkit.Eventually(t, 10*time.Second, "a tls failure counted", func() bool { return failures("tls") > before })
	})
	t.Run("TLS on the plaintext port", func(t *testing.T) {
		nc, err := net.Dial("tcp", e.saslPlain)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err == nil {
			t.Fatal("TLS handshake with a plaintext listener succeeded")
		}
	})
	for name, cert := range map[string]tls.Certificate{"expired client certificate": e.expired, "unknown CA": selfSigned(t)} {
		t.Run(name, func(t *testing.T) {
			cfg := e.tlsConfig()
			// Offer the certificate even when the broker's CA list does not name its issuer.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
			nc, err := tls.Dial("tcp", e.ssl, cfg)
			if err == nil {
				// TLS 1.3 reports the client certificate's rejection on the first read.
				_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = nc.Write(sizePrefixed(apiVersionsBytes()))
				_, err = nc.Read(make([]byte, 1))
				nc.Close()
			}
			if err == nil || !strings.Contains(err.Error(), "certificate") && !strings.Contains(err.Error(), "EOF") {
				t.Fatalf("got %v, want a certificate error", err)
			}
		})
	}
	t.Run("mTLS principal is the CN", func(t *testing.T) {
		c := dialTLSRaw(t, e.ssl, e.tlsConfig(e.clientCert))
		c.roundTrip(apiVersions(3))
		testkit.Eventually(t, 10*time.Second, "an SSL authentication counted", func() bool {
			return testutil.ToFloat64(e.srv.sec.m.authOK.WithLabelValues("SSL")) > 0
		})
	})

	if err := good.Ping(ctx); err != nil {
		t.Fatalf("good client after bad input: %v", err)
	}
}

func apiVersionsBytes() []byte {
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, apiVersions(3), 1)[4:]
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	other, err := newTestCA()
	if err != nil {
		t.Fatal(err)
	}
	return other
}
