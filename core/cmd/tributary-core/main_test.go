package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/internal/testkit"
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
	body := testkit.Metrics(t, srv.HTTPAddr())
	if !strings.Contains(body, `tributary_core_requests_total{api="Produce",error="none"} 50`) {
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

// TestMain lets a test re-run this binary as tributary-core itself, so the
// crash test can SIGKILL a real broker process.
func TestMain(m *testing.M) {
	if os.Getenv("TRIBUTARY_CORE_AS_MAIN") == "1" {
		os.Args = append([]string{"tributary-core"}, strings.Fields(os.Getenv("TRIBUTARY_CORE_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startProcess runs the broker as a child process and waits until it
// accepts connections.
func startProcess(t *testing.T, args string, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TRIBUTARY_CORE_AS_MAIN=1", "TRIBUTARY_CORE_ARGS="+args)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start broker process: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	testkit.Eventually(t, 30*time.Second, "the broker process listening on "+addr, func() bool { return testkit.Listening(addr) })
	return cmd
}

// loneBroker is the command line (for startProcess) of a single broker
// with a fresh data dir, three partitions a topic and only errors logged,
// and its Kafka address.
func loneBroker(t *testing.T) (args, addr string) {
	addr = testkit.FreeAddr(t)
	return fmt.Sprintf("-data-dir %s -kafka-addr %s -http-addr= -default-partitions 3 -log-level error", t.TempDir(), addr), addr
}

// TestKillNineLosesNothingAcknowledged SIGKILLs the broker process while an
// idempotent acks=all producer is busy, restarts it on the same data dir
// and port, and checks that every acknowledged record is there exactly once.
func TestKillNineLosesNothingAcknowledged(t *testing.T) {
	const total = 30_000
	args, addr := loneBroker(t)
	broker := startProcess(t, args, addr)

	ctx := testkit.Context(t, 2*time.Minute)
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("crash"), kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var mu sync.Mutex
	acked := map[string]bool{}
	var failed error
	var wg sync.WaitGroup
	for i := 0; i < total; i++ {
		wg.Add(1)
		prod.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("v%06d", i))}, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = err
				return
			}
			acked[string(r.Value)] = true
		})
		if i == total/3 {
			// Kill mid-stream, once some records are acknowledged.
			testkit.Poll(time.Minute, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(acked) > total/10
			})
			mu.Lock()
			t.Logf("SIGKILL with %d of %d records acknowledged", len(acked), total)
			mu.Unlock()
			if err := broker.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = broker.Wait()
			broker = startProcess(t, args, addr)
		}
	}
	wg.Wait()
	if failed != nil || len(acked) != total {
		t.Fatalf("%d of %d acknowledged; last failure: %v", len(acked), total, failed)
	}

	cons := newReader(t, []string{addr}, "crash")
	defer cons.Close()
	seen := map[string]int{}
	for len(seen) < len(acked) && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	for v := range acked {
		if seen[v] == 0 {
			t.Fatalf("acknowledged record %s lost (%d of %d acked records read)", v, len(seen), len(acked))
		}
	}
	for v, n := range seen {
		if n > 1 {
			t.Errorf("record %s read %d times (idempotent producer)", v, n)
		}
	}
}

// TestConsoleFlags: the console is off by default and -console-addr and
// -console-edges turn it on and point it at edges.
func TestConsoleFlags(t *testing.T) {
	cfg, _, err := loadConfig(nil, io.Discard)
	if err != nil || cfg.ConsoleAddr != "" {
		t.Fatalf("default console_addr %q (%v), want off", cfg.ConsoleAddr, err)
	}
	cfg, _, err = loadConfig([]string{"-console-addr", "127.0.0.1:9650", "-console-edges", "http://127.0.0.1:9645, http://10.0.0.7:9645"}, io.Discard)
	if err != nil || cfg.ConsoleAddr != "127.0.0.1:9650" || len(cfg.ConsoleEdges) != 2 || cfg.ConsoleEdges[1] != "http://10.0.0.7:9645" {
		t.Fatalf("console flags: %q %q %v", cfg.ConsoleAddr, cfg.ConsoleEdges, err)
	}
}

// Start-up mistakes end run with one line that says what to fix.
func TestStartupMistakes(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(typo, []byte("log:\n  retention_age: 10\nkafka_adr: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"kafka port in use": {[]string{"-data-dir", t.TempDir(), "-kafka-addr", busy.Addr().String(), "-http-addr", "-"}, "address already in use"},
		"http port in use":  {[]string{"-data-dir", t.TempDir(), "-kafka-addr", "127.0.0.1:0", "-http-addr", busy.Addr().String()}, "listen http"},
		"stray argument":    {[]string{"core.yaml"}, "give a config file as -config core.yaml"},
		"config mistakes":   {[]string{"-config", typo}, "log.retention_age (line 2): want a duration like 10s, 500ms or 1h30m, got 10; kafka_adr (line 3): unknown key; did you mean kafka_addr?"},
		"log level":         {[]string{"-log-level", "verbose"}, `log level "verbose": want debug, info, warn or error`},
		"log format":        {[]string{"-log-format", "xml"}, `log format "xml": want text or json`},
	} {
		err := run(context.Background(), tc.args, io.Discard, nil)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want one line saying %q", name, err, tc.want)
		}
	}
	// "-" disables the HTTP listener, as on the edge.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	ready := make(chan *server.Server, 1)
	go func() {
		errc <- run(ctx, []string{"-data-dir", t.TempDir(), "-kafka-addr", "127.0.0.1:0", "-http-addr", "-", "-log-level", "warn"}, io.Discard,
			func(s *server.Server) { ready <- s })
	}()
	select {
	case s := <-ready:
		if s.HTTPAddr() != "" {
			t.Errorf("-http-addr - still serves HTTP on %s", s.HTTPAddr())
		}
	case err := <-errc:
		t.Fatalf("-http-addr -: %v", err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestVersion(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"-version"}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.HasPrefix(s, "tributary-core ") || !strings.Contains(s, "go1.") {
		t.Fatalf("-version printed %q", s)
	}
}
