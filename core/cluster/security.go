package cluster

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/tributary-io/tributary/internal/pemfile"
)

// LinkSecurity protects the links between brokers. Gossip is encrypted and
// authenticated with a shared key (a broker without it cannot join); Raft
// and the controller-forwarding RPC run over mutually authenticated TLS,
// so only brokers holding a certificate from the cluster CA take part.
type LinkSecurity struct {
	// GossipKeys are base64 AES keys (16, 24 or 32 bytes). The first
	// encrypts; all are accepted, which is how a key is rotated: add the
	// new key second everywhere, then move it first, then drop the old.
	GossipKeys []string `yaml:"gossip_keys"`
	// CertFile and KeyFile are this broker's certificate, used as server
	// and as client on Raft and RPC; CAFile verifies the peers.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
}

func (s *LinkSecurity) validate() error {
	if s == nil {
		return nil
	}
	for i, k := range s.GossipKeys {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return fmt.Errorf("gossip key %d: %w", i, err)
		}
		if err := memberlist.ValidateKey(b); err != nil {
			return fmt.Errorf("gossip key %d: %w", i, err)
		}
	}
	if (s.CertFile == "") != (s.KeyFile == "") || (s.CertFile != "") != (s.CAFile != "") {
		return errors.New("cert_file, key_file and ca_file go together")
	}
	return nil
}

// keyring is memberlist's keyring for the configured gossip keys, nil with none.
func (s *LinkSecurity) keyring() (*memberlist.Keyring, error) {
	if s == nil || len(s.GossipKeys) == 0 {
		return nil, nil
	}
	var keys [][]byte
	for _, k := range s.GossipKeys {
		b, _ := base64.StdEncoding.DecodeString(k) // validated
		keys = append(keys, b)
	}
	kr, err := memberlist.NewKeyring(keys, keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	return kr, nil
}

// tlsConfigs loads the broker certificate: server requires and verifies
// peer certificates, client presents this broker's and verifies the peer's
// against the cluster CA. Both nil without TLS.
func (s *LinkSecurity) tlsConfigs() (server, client *tls.Config, err error) {
	if s == nil || s.CertFile == "" {
		return nil, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster TLS certificate: %w", err)
	}
	pool, err := pemfile.CertPool(s.CAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster TLS CA: %w", err)
	}
	server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	client = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: pool}
	return server, client, nil
}

// tlsStream is a raft.StreamLayer over mutually authenticated TLS.
type tlsStream struct {
	net.Listener
	client *tls.Config
}

var _ raft.StreamLayer = (*tlsStream)(nil)

func (t *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	cfg := t.client.Clone()
	if host, _, err := net.SplitHostPort(string(addr)); err == nil {
		cfg.ServerName = host
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), cfg)
}

// newTLSRaftTransport is raft's network transport over TLS on bind.
func newTLSRaftTransport(bind string, server, client *tls.Config, logw logBridge) (*raft.NetworkTransport, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransport(&tlsStream{Listener: tls.NewListener(ln, server), client: client}, 3, 10*time.Second, logw), nil
}
