package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tributary-io/tributary/internal/devcert"
	"github.com/tributary-io/tributary/internal/testkit"
)

// secureEnv is a broker with SASL_SSL, SASL_PLAINTEXT and SSL (mTLS)
// listeners, an admin super user and alice with no ACLs yet.
type secureEnv struct {
	srv                 *Server
	ca                  *devcert.CA
	dir                 string
	caFile              string
	saslSSL, saslPlain  string
	ssl                 string
	clientCert, expired tls.Certificate
}

func startSecure(t *testing.T) *secureEnv {
	t.Helper()
	dir := t.TempDir()
	ca := testkit.NewCA(t, "tributary test CA")
	caFile := ca.File
	certFile, keyFile := ca.ServerFiles(t, "broker")
	cfg := testConfig(filepath.Join(dir, "data"))
	cfg.Listeners = []ListenerConfig{
		{Name: "SASL_SSL", Protocol: ProtocolSASLSSL, Addr: "127.0.0.1:0"},
		{Name: "SASL_PLAINTEXT", Protocol: ProtocolSASLPlaintext, Addr: "127.0.0.1:0"},
		{Name: "SSL", Protocol: ProtocolSSL, Addr: "127.0.0.1:0"},
	}
	cfg.Security = SecurityConfig{
		TLS:        TLSConfig{CertFile: certFile, KeyFile: keyFile, CAFile: caFile, ClientAuth: "request", PrincipalRule: "CN"},
		Users:      []UserConfig{{Name: "admin", Password: "admin-secret"}, {Name: "alice", Password: "alice-secret"}},
		SuperUsers: []string{"User:admin"},
	}
	srv := startServer(t, cfg)
	e := &secureEnv{srv: srv, ca: ca.CA, dir: dir, caFile: caFile,
		saslSSL: srv.ListenerAddr("SASL_SSL"), saslPlain: srv.ListenerAddr("SASL_PLAINTEXT"), ssl: srv.ListenerAddr("SSL")}
	cl, err := ca.Client("device-7", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if e.clientCert, err = cl.TLS(); err != nil {
		t.Fatal(err)
	}
	old, err := ca.Client("device-old", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if e.expired, err = old.TLS(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *secureEnv) tlsConfig(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: e.ca.Pool(), Certificates: certs, MinVersion: tls.VersionTLS12}
}

// client is a franz-go client over SASL_SSL with the given mechanism.
func (e *secureEnv) client(t *testing.T, mech sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(e.saslSSL), kgo.DialTLSConfig(e.tlsConfig()), kgo.SASL(mech),
		kgo.RequestRetries(1), kgo.RetryTimeout(3 * time.Second)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// admin is an admin client logged in as the super user (SASL/PLAIN).
func (e *secureEnv) admin(t *testing.T) *kadm.Client {
	t.Helper()
	return kadm.NewClient(e.client(t, plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism()))
}

// adminWithTopics is admin after it has created topics, of one partition
// each, for a test to guard.
func (e *secureEnv) adminWithTopics(ctx context.Context, t *testing.T, topics ...string) *kadm.Client {
	t.Helper()
	admin := e.admin(t)
	for _, topic := range topics {
		if _, err := admin.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatalf("admin creates topic %s: %v", topic, err)
		}
	}
	return admin
}

func scram512(user, pass string) sasl.Mechanism {
	return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
}

// TestSecureProduceConsumeACL walks alice through Kafka's ACL story over
// SASL_SSL with SCRAM-SHA-512: refused without ACLs, refused with a wrong
// password, served (produce, and consume with a group) once the admin adds
// ACLs through CreateAcls, and shown only the topics she may describe.
func TestSecureProduceConsumeACL(t *testing.T) {
	t.Parallel()
	e := startSecure(t)
	ctx := testkit.Context(t, 30*time.Second)
	admin := e.adminWithTopics(ctx, t, "sensors.a", "secret")

	// No ACL: alice authenticates but may not write.
	alice := e.client(t, scram512("alice", "alice-secret"), kgo.DisableIdempotentWrite())
	err := alice.ProduceSync(ctx, &kgo.Record{Topic: "sensors.a", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce without ACL: got %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	// A wrong password is refused at login.
	wrong := e.client(t, scram512("alice", "nope"))
	if err := wrong.Ping(ctx); err == nil || !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") {
		t.Fatalf("wrong password: got %v, want SASL_AUTHENTICATION_FAILED", err)
	}

	// The admin grants alice the sensors.* prefix and group g1.
	acls := kadm.NewACLs().Allow("User:alice").AllowHosts().
		Topics("sensors.").ResourcePatternType(kadm.ACLPatternPrefixed).
		Groups("g1").Operations(kadm.OpRead, kadm.OpWrite, kadm.OpDescribe)
	results, err := admin.CreateACLs(ctx, acls)
	if err != nil {
		t.Fatalf("create ACLs: %v", err)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("create ACL %+v: %v", r, r.Err)
		}
	}
	described, err := admin.DescribeACLs(ctx, kadm.NewACLs().AnyResource().Allow().AllowHosts().
		ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny))
	if err != nil || len(described) != 1 || len(described[0].Described) == 0 {
		t.Fatalf("describe ACLs: %v %+v", err, described)
	}

	alice2 := e.client(t, scram512("alice", "alice-secret"))
	for i := 0; i < 10; i++ {
		if err := alice2.ProduceSync(ctx, &kgo.Record{Topic: "sensors.a", Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatalf("produce with ACL: %v", err)
		}
	}
	// A request beyond the 64 KiB pre-authentication cap, right after login.
	fresh := e.client(t, scram512("alice", "alice-secret"))
	big := make([]byte, 300<<10)
	_, _ = rand.Read(big) // incompressible
	if err := fresh.ProduceSync(ctx, &kgo.Record{Topic: "sensors.a", Value: big}).FirstErr(); err != nil {
		t.Fatalf("large produce after login: %v", err)
	}
	if err := alice2.ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to secret: got %v", err)
	}

	// Metadata lists only what alice may describe.
	aliceAdm := kadm.NewClient(alice2)
	topics, err := aliceAdm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !topics.Has("sensors.a") || topics.Has("secret") {
		t.Fatalf("alice sees %v, want sensors.a and not secret", topics.Names())
	}

	cons := e.client(t, scram512("alice", "alice-secret"), kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("sensors.a"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < 11 {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 11: %v", got, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		got += fs.NumRecords()
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit in g1: %v", err)
	}

	// Another group is refused.
	other := e.client(t, scram512("alice", "alice-secret"), kgo.ConsumerGroup("g2"), kgo.ConsumeTopics("sensors.a"))
	var gerr error
	for gerr == nil && ctx.Err() == nil {
		other.PollFetches(ctx).EachError(func(_ string, _ int32, err error) { gerr = err })
	}
	if !errors.Is(gerr, kerr.GroupAuthorizationFailed) {
		t.Fatalf("group g2: got %v, want GROUP_AUTHORIZATION_FAILED", gerr)
	}
}

// newTestCA makes a client certificate signed by a CA the broker does not trust.
func newTestCA() (tls.Certificate, error) {
	ca, err := devcert.NewCA("stranger")
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := ca.Client("mallory", time.Now().Add(time.Hour))
	if err != nil {
		return tls.Certificate{}, err
	}
	return leaf.TLS()
}

// The admin APIs added beside security are guarded too: without ALTER_CONFIGS
// or DELETE on the topic, or DESCRIBE on the cluster, alice is refused;
// the super user is served.
func TestSecureAdminAPIs(t *testing.T) {
	t.Parallel()
	e := startSecure(t)
	ctx := testkit.Context(t, 30*time.Second)
	admin := e.adminWithTopics(ctx, t, "guarded")
	// Alice may read and write the topic, nothing more.
	acls := kadm.NewACLs().Allow("User:alice").AllowHosts().Topics("guarded").ResourcePatternType(kadm.ACLPatternLiteral).
		Operations(kadm.OpRead, kadm.OpWrite, kadm.OpDescribe)
	if _, err := admin.CreateACLs(ctx, acls); err != nil {
		t.Fatal(err)
	}
	alice := kadm.NewClient(e.client(t, scram512("alice", "alice-secret")))
	set := kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("60000")}
	res, err := alice.AlterTopicConfigs(ctx, []kadm.AlterConfig{set}, "guarded")
	if err != nil || len(res) != 1 || !errors.Is(res[0].Err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice alters a topic config: %+v %v, want TOPIC_AUTHORIZATION_FAILED", res, err)
	}
	dr, err := alice.DeleteRecords(ctx, kadm.Offsets{"guarded": {0: {Topic: "guarded", Partition: 0, At: 0}}})
	if err != nil || !errors.Is(dr["guarded"][0].Err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice deletes records: %+v %v, want TOPIC_AUTHORIZATION_FAILED", dr, err)
	}
	if _, err := alice.DescribeAllLogDirs(ctx, nil); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("alice describes log dirs: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
	res, err = admin.AlterTopicConfigs(ctx, []kadm.AlterConfig{set}, "guarded")
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("the super user alters a topic config: %+v %v", res, err)
	}
}

// TestDeleteUnknownTopicIDWithoutACLs: deleting by a topic id that names
// no topic is answered UNKNOWN_TOPIC_ID, as Kafka does, even for a user
// with no ACLs (there is no topic to be refused), while a known topic's
// id is still refused to her.
func TestDeleteUnknownTopicIDWithoutACLs(t *testing.T) {
	t.Parallel()
	e := startSecure(t)
	ctx := testkit.Context(t, 30*time.Second)
	admin := e.adminWithTopics(ctx, t, "kept")
	details, err := admin.ListTopics(ctx, "kept")
	if err != nil || details["kept"].Err != nil {
		t.Fatalf("list topics: %v %v", err, details["kept"].Err)
	}
	id := [16]byte(details["kept"].ID)
	alice := e.client(t, scram512("alice", "alice-secret"))
	for _, tc := range []struct {
		id   [16]byte
		want int16
	}{{[16]byte{1, 2, 3}, kerr.UnknownTopicID.Code}, {id, kerr.TopicAuthorizationFailed.Code}} {
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.Version = 6
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.TopicID = tc.id
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != tc.want {
			t.Fatalf("delete id %x: %+v, want %v", tc.id, resp.Topics, kerr.ErrorForCode(tc.want))
		}
	}
}
