package main

// Interoperability of the core's SASL over TLS with clients other than
// franz-go. They live in the benchmarks module, which already pulls in peer
// systems, so that Sarama and kafka-go stay out of the product's modules.

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"
	kgoplain "github.com/segmentio/kafka-go/sasl/plain"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	coreserver "github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/internal/testkit"
)

// secureCore starts a core with a SASL_SSL listener, users admin (super
// user), alice and bob, and no ACLs.
func secureCore(t *testing.T) (addr string, tc *tls.Config, admin *kadm.Client) {
	t.Helper()
	dir := t.TempDir()
	certs := testkit.ServerCerts(t)
	cfg := coreserver.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.HTTPAddr = ""
	cfg.Listeners = []coreserver.ListenerConfig{{Name: "SASL_SSL", Protocol: coreserver.ProtocolSASLSSL, Addr: "127.0.0.1:0"}}
	cfg.Security = coreserver.SecurityConfig{
		TLS:        coreserver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile},
		Users:      []coreserver.UserConfig{{Name: "admin", Password: "admin-secret"}, {Name: "alice", Password: "alice-secret"}},
		SuperUsers: []string{"User:admin"},
	}
	srv, err := coreserver.Start(cfg, testkit.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	addr = srv.ListenerAddr("SASL_SSL")
	tc = certs.Client
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTLSConfig(tc.Clone()),
		kgo.SASL(plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return addr, tc, kadm.NewClient(cl)
}

func grantAlice(t *testing.T, admin *kadm.Client, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admin.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts().Topics(topic).
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead, kadm.OpWrite, kadm.OpDescribe)); err != nil {
		t.Fatal(err)
	}
}

func saramaConfig(tc *tls.Config, user, pass string) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_8_0_0
	c.Net.TLS.Enable, c.Net.TLS.Config = true, tc.Clone()
	c.Net.SASL.Enable, c.Net.SASL.Mechanism = true, sarama.SASLTypePlaintext
	c.Net.SASL.User, c.Net.SASL.Password = user, pass
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Retry.Max = 1
	c.Metadata.Retry.Max = 1
	c.Net.DialTimeout, c.Net.ReadTimeout = 5*time.Second, 5*time.Second
	return c
}

// TestSaramaSaslPlainTLS: Sarama with SASL PLAIN over TLS is refused with a
// wrong password and without ACLs, and produces and consumes once the ACLs
// are there.
func TestSaramaSaslPlainTLS(t *testing.T) {
	addr, tc, admin := secureCore(t)
	if _, err := sarama.NewSyncProducer([]string{addr}, saramaConfig(tc, "alice", "wrong")); err == nil {
		t.Fatal("Sarama with a wrong password connected")
	}
	p, err := sarama.NewSyncProducer([]string{addr}, saramaConfig(tc, "alice", "alice-secret"))
	if err != nil {
		t.Fatalf("Sarama login: %v", err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "sarama", Value: sarama.StringEncoder("x")}); err == nil {
		t.Fatal("Sarama produced without an ACL")
	}
	grantAlice(t, admin, "sarama")
	p2, err := sarama.NewSyncProducer([]string{addr}, saramaConfig(tc, "alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	for i := range 5 {
		if _, _, err := p2.SendMessage(&sarama.ProducerMessage{Topic: "sarama", Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
			t.Fatalf("Sarama produce with ACL: %v", err)
		}
	}
	c, err := sarama.NewConsumer([]string{addr}, saramaConfig(tc, "alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition("sarama", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("Sarama consume: %v", err)
	}
	defer pc.Close()
	for i := range 5 {
		select {
		case m := <-pc.Messages():
			if string(m.Value) != fmt.Sprint(i) {
				t.Fatalf("message %d: %q", i, m.Value)
			}
		case err := <-pc.Errors():
			t.Fatalf("Sarama consume: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("Sarama read %d of 5", i)
		}
	}
}

// TestKafkaGoSaslPlainTLS is the same story with segmentio/kafka-go.
func TestKafkaGoSaslPlainTLS(t *testing.T) {
	addr, tc, admin := secureCore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	writer := func(pass string) *kafkago.Writer {
		return &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: "kafkago", RequiredAcks: kafkago.RequireAll, MaxAttempts: 1,
			Transport: &kafkago.Transport{TLS: tc.Clone(), SASL: kgoplain.Mechanism{Username: "alice", Password: pass}}}
	}
	msg := kafkago.Message{Value: []byte("x")}
	w := writer("wrong")
	if err := w.WriteMessages(ctx, msg); err == nil {
		t.Fatal("kafka-go with a wrong password wrote")
	}
	w.Close()
	if _, err := admin.CreateTopic(ctx, 1, 1, nil, "kafkago"); err != nil {
		t.Fatal(err)
	}
	// Without DESCRIBE the topic is hidden from alice's Metadata, so
	// kafka-go reports it unknown; either way nothing is written.
	w = writer("alice-secret")
	if err := w.WriteMessages(ctx, msg); err == nil {
		t.Fatal("kafka-go wrote without an ACL")
	}
	w.Close()
	if _, err := admin.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts().Topics("kafkago").
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead, kadm.OpWrite, kadm.OpDescribe)); err != nil {
		t.Fatal(err)
	}
	w = writer("alice-secret")
	defer w.Close()
	for i := range 5 {
		if err := w.WriteMessages(ctx, kafkago.Message{Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatalf("kafka-go write with ACL: %v", err)
		}
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{addr}, Topic: "kafkago", Partition: 0, MaxWait: 200 * time.Millisecond,
		Dialer: &kafkago.Dialer{Timeout: 5 * time.Second, TLS: tc.Clone(), SASLMechanism: kgoplain.Mechanism{Username: "alice", Password: "alice-secret"}}})
	defer r.Close()
	for i := range 5 {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("kafka-go read %d: %v", i, err)
		}
		if string(m.Value) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, m.Value)
		}
	}
}
