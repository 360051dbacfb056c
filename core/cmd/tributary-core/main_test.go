package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/storage"
)

func TestExampleConfigLoads(t *testing.T) {
	cfg, _, err := loadConfig([]string{"-config", filepath.Join("..", "..", "..", "deploy", "core.example.yaml")}, io.Discard)
	if err != nil {
		t.Fatalf("load example config: %v", err)
	}
	d := server.DefaultConfig()
	if cfg.DataDir != d.DataDir || cfg.KafkaAddr != d.KafkaAddr || cfg.HTTPAddr != d.HTTPAddr || !*cfg.AutoCreateTopics ||
		cfg.MaintainInterval != d.MaintainInterval || cfg.MaxFrameBytes != d.MaxFrameBytes {
		t.Errorf("example config differs from the defaults it documents: %+v", cfg)
	}
	if cfg.Log.RetentionAge != 7*24*time.Hour || cfg.Log.Durability.Mode != storage.SyncInterval ||
		cfg.Log.Durability.Interval != 100*time.Millisecond || cfg.Groups.InitialRebalanceDelay != 3*time.Second {
		t.Errorf("example log/groups settings not parsed: %+v %+v", cfg.Log, cfg.Groups)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	cfg, _, err := loadConfig([]string{
		"-config", filepath.Join("..", "..", "..", "deploy", "core.example.yaml"),
		"-data-dir", "/tmp/x", "-auto-create-topics=false", "-default-partitions", "6", "-sync", "always",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/tmp/x" || *cfg.AutoCreateTopics || cfg.DefaultPartitions != 6 || cfg.Log.Durability.Mode != storage.SyncAlways {
		t.Errorf("flags did not override: %+v", cfg)
	}
	if _, _, err := loadConfig([]string{"-sync", "sometimes"}, io.Discard); err == nil {
		t.Errorf("bad sync mode accepted")
	}
	if _, _, err := loadConfig([]string{"extra"}, io.Discard); err == nil {
		t.Errorf("stray argument accepted")
	}
}

// TestRunShutdownFlushes runs the command, produces, stops it the way a
// signal does, and finds the records after starting it again.
func TestRunShutdownFlushes(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-data-dir", dir, "-kafka-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-log-level", "warn"}
	start := func() (*server.Server, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan *server.Server, 1)
		errc := make(chan error, 1)
		go func() { errc <- run(ctx, args, io.Discard, func(s *server.Server) { ready <- s }) }()
		select {
		case s := <-ready:
			return s, func() {
				cancel()
				if err := <-errc; err != nil {
					t.Errorf("run: %v", err)
				}
			}
		case err := <-errc:
			cancel()
			t.Fatalf("run: %v", err)
		case <-time.After(30 * time.Second):
			cancel()
			t.Fatal("server did not start")
		}
		return nil, nil
	}

	srv, stop := start()
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", err, resp)
	}
	_ = resp.Body.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()), kgo.DefaultProduceTopic("flush"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 50; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	cl.Close()
	metrics, err := http.Get("http://" + srv.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(metrics.Body)
	_ = metrics.Body.Close()
	if !strings.Contains(string(body), `tributary_core_requests_total{api="Produce",error="none"} 50`) {
		t.Errorf("metrics lack 50 produce requests:\n%s", body)
	}
	stop()

	srv, stop = start()
	defer stop()
	l, err := srv.Topics().Partition("flush", 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := l.NextOffset(); n != 50 {
		t.Fatalf("after restart the log ends at %d, want 50 (acks=1 records lost on graceful shutdown)", n)
	}
}
