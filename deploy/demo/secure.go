package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"gopkg.in/yaml.v3"

	"github.com/tributary-io/tributary/internal/devcert"
)

// secureSetup is what -secure adds: a development CA and certificates under
// <data>/certs (made fresh on every start), SCRAM users with passwords drawn
// per run, and a gossip key. Every link then uses TLS: Kafka clients, the
// bridges and replica fetches over SASL_SSL with SCRAM-SHA-512, gossip
// encrypted, Raft and the forwarding RPC on mutual TLS, the fleets' MQTT on
// TLS.
type secureSetup struct {
	dir, caFile string
	ca          *devcert.CA
	pw          map[string]string // user → password
	gossipKey   string
}

// Demo users: admin (super user), bridge (writes and creates topics),
// demo (the live view and kcat: read), broker (inter-broker).
var demoUsers = []string{"admin", "bridge", "demo", "broker"}

func newSecureSetup(data string) (*secureSetup, error) {
	s := &secureSetup{dir: filepath.Join(data, "certs"), pw: map[string]string{}}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs dir: %w", err)
	}
	var err error
	if s.ca, err = devcert.NewCA("tributary demo CA"); err != nil {
		return nil, err
	}
	s.caFile = filepath.Join(s.dir, "ca.crt")
	if err := os.WriteFile(s.caFile, s.ca.PEM, 0o644); err != nil {
		return nil, fmt.Errorf("write CA: %w", err)
	}
	for _, u := range demoUsers {
		s.pw[u] = randomHex(12)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("gossip key: %w", err)
	}
	s.gossipKey = base64.StdEncoding.EncodeToString(key)
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cert writes a certificate for name (server and client use, localhost
// and 127.0.0.1) and returns its files.
func (s *secureSetup) cert(name string) (string, string, error) {
	leaf, err := s.ca.Peer(name)
	if err != nil {
		return "", "", err
	}
	return leaf.WriteFiles(s.dir, name)
}

// coreConfig is broker name's YAML: one SASL_SSL listener on kafkaAddr,
// the demo users and ACLs, and, in a cluster, secured links.
func (s *secureSetup) coreConfig(name, kafkaAddr string, cluster bool) ([]byte, error) {
	certFile, keyFile, err := s.cert(name)
	if err != nil {
		return nil, err
	}
	var users []map[string]any
	for _, u := range demoUsers {
		users = append(users, map[string]any{"name": u, "password": s.pw[u]})
	}
	cfg := map[string]any{
		"listeners": []map[string]any{{"name": "SASL_SSL", "protocol": "SASL_SSL", "addr": kafkaAddr}},
		"security": map[string]any{
			"tls":               map[string]any{"cert_file": certFile, "key_file": keyFile, "ca_file": s.caFile, "client_auth": "request"},
			"sasl_mechanisms":   []string{"SCRAM-SHA-256", "SCRAM-SHA-512"},
			"users":             users,
			"super_users":       []string{"User:admin"},
			"inter_broker_user": "broker",
			"acls": []string{
				"allow User:bridge * all topic *",
				"allow User:bridge * idempotent-write cluster kafka-cluster",
				"allow User:demo * read topic *",
				"allow User:demo * read group *",
			},
		},
	}
	if cluster {
		cfg["cluster"] = map[string]any{"security": map[string]any{
			"gossip_keys": []string{s.gossipKey}, "cert_file": certFile, "key_file": keyFile, "ca_file": s.caFile}}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("core config: %w", err)
	}
	return append([]byte("# Written by the demo launcher (deploy/demo -secure) on every start.\n"), b...), nil
}

// bridge is the edge's bridge security section.
func (s *secureSetup) bridge() map[string]any {
	return map[string]any{
		"tls":  map[string]any{"ca_file": s.caFile},
		"sasl": map[string]any{"mechanism": "SCRAM-SHA-512", "username": "bridge", "password": s.pw["bridge"]},
	}
}

// clientOpts make a franz-go client log in as user.
func (s *secureSetup) clientOpts(user string) []kgo.Opt {
	return []kgo.Opt{
		kgo.DialTLSConfig(&tls.Config{RootCAs: s.ca.Pool(), MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: user, Pass: s.pw[user]}.AsSha512Mechanism()),
	}
}

// writeClientProperties writes librdkafka/Java client properties for the
// demo user, so `kcat -F <file> -C -t <topic>` reads the streams.
func (s *secureSetup) writeClientProperties(path string, brokers []string) error {
	ca, err := filepath.Abs(s.caFile)
	if err != nil {
		return err
	}
	props := strings.Join([]string{
		"# Written by the demo launcher (deploy/demo -secure); valid while this run lasts.",
		"bootstrap.servers=" + strings.Join(brokers, ","),
		"security.protocol=SASL_SSL",
		"sasl.mechanism=SCRAM-SHA-512",
		"sasl.username=demo",
		"sasl.password=" + s.pw["demo"],
		"ssl.ca.location=" + ca,
		"",
	}, "\n")
	if err := os.WriteFile(path, []byte(props), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// secureEdge adds to an edge config: MQTT on TLS only (the plain listener
// off) and, when bridged, TLS and SCRAM on the bridge.
func (d *demo) secureEdge(cfg []byte, name, mqttAddr string, bridged bool) ([]byte, error) {
	var m map[string]any
	if err := yaml.Unmarshal(cfg, &m); err != nil {
		return nil, fmt.Errorf("%s: edge config: %w", name, err)
	}
	certFile, keyFile, err := d.sec.cert(name)
	if err != nil {
		return nil, err
	}
	m["mqtt"] = map[string]any{"address": "-",
		"tls": map[string]any{"address": mqttAddr, "cert_file": certFile, "key_file": keyFile}}
	if bridged {
		br, _ := m["bridge"].(map[string]any)
		if br == nil {
			br = map[string]any{}
		}
		for k, v := range d.sec.bridge() {
			br[k] = v
		}
		m["bridge"] = br
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%s: edge config: %w", name, err)
	}
	return append([]byte("# Written by the demo launcher (deploy/demo -secure) on every start.\n"), b...), nil
}
