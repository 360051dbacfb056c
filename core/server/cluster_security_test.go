package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/internal/testkit"
)

// TestSecureCluster runs three brokers with every link secured: clients
// and replica fetches on SASL_SSL (the followers log in as the
// inter-broker user), encrypted gossip, Raft and the forwarding RPC on
// mutual TLS. acks=all records reach every replica; the leader of the
// partition is killed and the survivors serve every acknowledged record.
func TestSecureCluster(t *testing.T) {
	t.Parallel()
	ca := testkit.NewCA(t, "secure cluster CA")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	tb := startTestClusterWith(t, 3, func(i int, cfg *Config) {
		cert, keyFile := ca.PeerFiles(t, fmt.Sprintf("broker-%d", i+1))
		cfg.Listeners = []ListenerConfig{{Name: "SASL_SSL", Protocol: ProtocolSASLSSL, Addr: cfg.KafkaAddr}}
		cfg.Security = SecurityConfig{
			TLS:             TLSConfig{CertFile: cert, KeyFile: keyFile, CAFile: ca.File, ClientAuth: "request"},
			Users:           []UserConfig{{Name: "admin", Password: "admin-secret"}, {Name: "broker", Password: "broker-secret"}},
			SuperUsers:      []string{"User:admin"},
			InterBrokerUser: "broker",
		}
		cfg.Cluster.Faults = nil // fault injection and TLS do not combine
		cfg.Cluster.Security = &cluster.LinkSecurity{GossipKeys: []string{base64.StdEncoding.EncodeToString(key)},
			CertFile: cert, KeyFile: keyFile, CAFile: ca.File}
	})
	client := func(opts ...kgo.Opt) *kgo.Client {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(tb.addrs()...),
			kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}),
			kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism())}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	ctx := testkit.Context(t, 60*time.Second)
	createSecureTopic(ctx, t, client(), "secure", 1, 3)
	tb.waitTopic("secure")
	prod := client(kgo.DefaultProduceTopic("secure"), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range 50 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	tb.waitFor("every replica has the 50 records", 20*time.Second, func() bool {
		for _, s := range tb.srvs {
			l, err := s.Topics().Partition("secure", 0)
			if err != nil || l.NextOffset() < 50 {
				return false
			}
		}
		return true
	})

	// Users and ACLs made through one broker reach the others through Raft:
	// carol is created and granted on broker 1, then logs in on broker 3.
	adm1, err := kgo.NewClient(kgo.SeedBrokers(tb.srvs[0].Addr()), kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer adm1.Close()
	adm := kadm.NewClient(adm1)
	if _, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "carol", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "carol-secret"}}); err != nil {
		t.Fatalf("alter user SCRAM: %v", err)
	}
	if _, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:carol").AllowHosts().Topics("secure").
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpWrite)); err != nil {
		t.Fatalf("create ACL: %v", err)
	}
	tb.waitFor("carol and her ACL on every broker", 10*time.Second, func() bool {
		for _, s := range tb.srvs {
			if _, ok := s.sec.creds.Get("carol", "SCRAM-SHA-512"); !ok {
				return false
			}
			if !s.sec.authz.Authorize("User:carol", "127.0.0.1", opWrite, rtTopic, "secure") {
				return false
			}
		}
		return true
	})
	carol, err := kgo.NewClient(kgo.SeedBrokers(tb.srvs[2].Addr()), kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: "carol", Pass: "carol-secret"}.AsSha512Mechanism()), kgo.DefaultProduceTopic("secure"))
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close()
	if err := carol.ProduceSync(ctx, &kgo.Record{Value: []byte("from carol")}).FirstErr(); err != nil {
		t.Fatalf("carol, created on broker 1, producing through broker 3: %v", err)
	}
	for _, s := range tb.srvs {
		if _, ok := s.sec.creds.Get("admin", "SCRAM-SHA-512"); !ok {
			t.Fatalf("broker %d lost its bootstrap admin", s.cfg.NodeID)
		}
	}

	leader := tb.srvs[0].Cluster().Metadata().Topics["secure"].Partitions[0].Leader
	if err := tb.byID(leader).Close(); err != nil {
		t.Fatalf("kill leader %d: %v", leader, err)
	}
	var seeds []string
	for _, s := range tb.srvs {
		if s.cfg.NodeID != leader {
			seeds = append(seeds, s.Addr())
		}
	}
	cons, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism()),
		kgo.ConsumeTopics("secure"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, failoverOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := 0
	for got < 51 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 51 acknowledged records after the leader died", got)
		}
		got += fs.NumRecords()
	}
}

func createSecureTopic(ctx context.Context, t *testing.T, cl *kgo.Client, name string, partitions int32, rf int16) {
	t.Helper()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, rf, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, name)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic %s: %v %v", name, err, resp.Err)
	}
}
