package bridge

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tributary-io/tributary/internal/pemfile"
)

// TLSConfig makes the bridge connect with TLS (Kafka's SSL and SASL_SSL).
type TLSConfig struct {
	// CAFile verifies the brokers; empty uses the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate for mTLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name verified in the broker's certificate
	// (default: the host of each broker address).
	ServerName string `yaml:"server_name"`
}

// SASLConfig makes the bridge authenticate (SASL_PLAINTEXT, SASL_SSL).
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password, or PasswordFile holding it (trailing newline trimmed).
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// linkSecurity is what every connection to the core uses.
type linkSecurity struct {
	tls  *tls.Config
	sasl sasl.Mechanism
}

func (c Config) validateSecurity() error {
	if t := c.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("bridge: tls: cert_file and key_file go together")
	}
	if s := c.SASL; s != nil {
		switch s.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return fmt.Errorf("bridge: sasl: mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
		}
		if s.Username == "" || (s.Password == "" && s.PasswordFile == "") {
			return fmt.Errorf("bridge: sasl: username and password (or password_file) are required")
		}
	}
	return nil
}

// security loads the TLS files and builds the SASL mechanism.
func (c Config) security() (linkSecurity, error) {
	var ls linkSecurity
	if t := c.TLS; t != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
		if t.CAFile != "" {
			pool, err := pemfile.CertPool(t.CAFile)
			if err != nil {
				return ls, fmt.Errorf("bridge: tls: CA: %w", err)
			}
			tc.RootCAs = pool
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return ls, fmt.Errorf("bridge: tls: client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		ls.tls = tc
	}
	if s := c.SASL; s != nil {
		pw := s.Password
		if s.PasswordFile != "" {
			b, err := os.ReadFile(s.PasswordFile)
			if err != nil {
				return ls, fmt.Errorf("bridge: sasl: %w", err)
			}
			pw = strings.TrimRight(string(b), "\r\n")
		}
		switch s.Mechanism {
		case "PLAIN":
			ls.sasl = plain.Auth{User: s.Username, Pass: pw}.AsMechanism()
		case "SCRAM-SHA-256":
			ls.sasl = scram.Auth{User: s.Username, Pass: pw}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			ls.sasl = scram.Auth{User: s.Username, Pass: pw}.AsSha512Mechanism()
		}
	}
	return ls, nil
}

// clientOpts are the franz-go options for the same security.
func (ls linkSecurity) clientOpts() []kgo.Opt {
	var opts []kgo.Opt
	if ls.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(ls.tls.Clone()))
	}
	if ls.sasl != nil {
		opts = append(opts, kgo.SASL(ls.sasl))
	}
	return opts
}

// dial opens a connection to addr, with TLS when configured.
func (ls linkSecurity) dial(ctx context.Context, d *net.Dialer, addr string) (net.Conn, error) {
	if ls.tls == nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	tc := ls.tls.Clone()
	if tc.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("broker address %q: %w", addr, err)
		}
		tc.ServerName = host
	}
	td := tls.Dialer{NetDialer: d, Config: tc}
	return td.DialContext(ctx, "tcp", addr)
}

// authenticate runs SaslHandshake v1 and SaslAuthenticate v1 on a produce
// connection before its first produce, as any Kafka client does: the
// bridge's hand-rolled connection gets no help from a client library here.
func (c *produceConn) authenticate(ctx context.Context, mech sasl.Mechanism) error {
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, mech.Name()
	hsResp := kmsg.NewPtrSASLHandshakeResponse()
	if err := c.roundTrip(hs, hsResp); err != nil {
		return fmt.Errorf("sasl handshake with %s: %w", c.nc.RemoteAddr(), err)
	}
	if hsResp.ErrorCode != 0 {
		return fmt.Errorf("sasl handshake with %s: mechanism %s refused (error %d; broker offers %v)",
			c.nc.RemoteAddr(), mech.Name(), hsResp.ErrorCode, hsResp.SupportedMechanisms)
	}
	host, _, _ := net.SplitHostPort(c.nc.RemoteAddr().String())
	sess, tok, err := mech.Authenticate(ctx, host)
	if err != nil {
		return fmt.Errorf("sasl %s: %w", mech.Name(), err)
	}
	for i := 0; i < 8; i++ {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version, req.SASLAuthBytes = 1, tok
		resp := kmsg.NewPtrSASLAuthenticateResponse()
		if err := c.roundTrip(req, resp); err != nil {
			return fmt.Errorf("sasl authenticate with %s: %w", c.nc.RemoteAddr(), err)
		}
		if resp.ErrorCode != 0 {
			msg := ""
			if resp.ErrorMessage != nil {
				msg = *resp.ErrorMessage
			}
			return fmt.Errorf("sasl authenticate with %s: error %d: %s", c.nc.RemoteAddr(), resp.ErrorCode, msg)
		}
		done, next, err := sess.Challenge(resp.SASLAuthBytes)
		if err != nil {
			return fmt.Errorf("sasl %s: %w", mech.Name(), err)
		}
		if done {
			return nil
		}
		tok = next
	}
	return fmt.Errorf("sasl %s with %s: exchange did not finish", mech.Name(), c.nc.RemoteAddr())
}
