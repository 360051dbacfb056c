package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CoreProc is one tributary-core broker running as a process of its own,
// so a test can SIGKILL, SIGTERM or SIGSTOP it.
type CoreProc struct {
	ID      int32
	Addr    string // Kafka listener
	Config  string // its YAML file
	DataDir string
	LogFile string // its stderr
	command func(config string) *exec.Cmd
	cmd     *exec.Cmd
}

// Start runs the broker and waits until its Kafka listener accepts.
func (b *CoreProc) Start(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(b.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := b.command(b.Config)
	cmd.Stderr = f
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start broker %d: %v", b.ID, err)
	}
	b.cmd = cmd
	if !Poll(30*time.Second, func() bool { return Listening(b.Addr) }) {
		t.Fatalf("broker %d did not listen on %s", b.ID, b.Addr)
	}
}

// Stop signals the broker and waits for it to exit, killing it after 20 s.
// A frozen (SIGSTOPped) broker is resumed first so the signal is handled.
func (b *CoreProc) Stop(sig syscall.Signal) {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(sig)
	_ = b.cmd.Process.Signal(syscall.SIGCONT)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
	b.cmd = nil
}

// StopWithin signals the broker and waits up to limit for it to exit by
// itself; it reports how long that took and whether it did (a broker still
// running at the limit is killed).
func (b *CoreProc) StopWithin(sig syscall.Signal, limit time.Duration) (time.Duration, bool) {
	if b.cmd == nil {
		return 0, true
	}
	start := time.Now()
	_ = b.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	exited := true
	select {
	case <-done:
	case <-time.After(limit):
		exited = false
		_ = b.cmd.Process.Kill()
		<-done
	}
	b.cmd = nil
	return time.Since(start), exited
}

// Freeze stops the broker with SIGSTOP: its sockets stay open and nothing
// answers, as with a hung disk or a paused VM. Thaw resumes it.
func (b *CoreProc) Freeze() { _ = b.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen broker.
func (b *CoreProc) Thaw() { _ = b.cmd.Process.Signal(syscall.SIGCONT) }

// CoreCluster is a cluster of broker processes on loopback.
type CoreCluster struct {
	Brokers []*CoreProc
}

// Addrs are the brokers' Kafka addresses.
func (c *CoreCluster) Addrs() []string {
	var out []string
	for _, b := range c.Brokers {
		out = append(out, b.Addr)
	}
	return out
}

// StartCoreCluster starts n brokers that form one cluster with test-sized
// timings (failure detected in about a second, leaders moved in a few).
// command builds the process for one config file: the tributary-core
// binary with "-config", or a test binary re-running its main. The brokers
// are SIGKILLed when the test ends, and their log tails printed if it
// failed.
func StartCoreCluster(t *testing.T, n int, command func(config string) *exec.Cmd) *CoreCluster {
	t.Helper()
	base := t.TempDir()
	var serf []string
	for range n {
		serf = append(serf, FreeAddr(t))
	}
	c := &CoreCluster{}
	for i := range n {
		b := &CoreProc{ID: int32(i + 1), Addr: FreeAddr(t),
			Config:  filepath.Join(base, fmt.Sprintf("broker-%d.yaml", i+1)),
			DataDir: filepath.Join(base, fmt.Sprintf("data-%d", i+1)),
			LogFile: filepath.Join(base, fmt.Sprintf("broker-%d.log", i+1)),
			command: command}
		yaml := CoreBrokerConfig(b.ID, b.DataDir, b.Addr, FreeAddr(t), FreeAddr(t), serf)
		if err := os.WriteFile(b.Config, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		c.Brokers = append(c.Brokers, b)
	}
	t.Cleanup(func() {
		for _, b := range c.Brokers {
			b.Stop(syscall.SIGKILL)
		}
		if t.Failed() {
			for _, b := range c.Brokers {
				out, _ := os.ReadFile(b.LogFile)
				lines := strings.Split(string(out), "\n")
				t.Logf("broker %d log tail:\n%s", b.ID, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
			keepFailed(t, base)
		}
	})
	for _, b := range c.Brokers {
		b.Start(t)
	}
	return c
}

// CoreBrokerConfig is the YAML config of broker id of a test cluster whose
// brokers gossip on serf (serf[id-1] being its own), with the timings every
// test and benchmark cluster shares: a failure detected in about a second,
// leaders moved in a few (Raft() and Gossip()). Its HTTP listener is off.
func CoreBrokerConfig(id int32, dataDir, kafkaAddr, raftAddr, rpcAddr string, serf []string) string {
	return fmt.Sprintf(`data_dir: %s
kafka_addr: %s
http_addr: ""
node_id: %d
default_partitions: 3
groups: {initial_rebalance_delay: -1s}
replication:
  lag_time_max: 5s
  fetch_max_wait: 200ms
  ack_timeout: 5s
cluster:
  raft_addr: %s
  rpc_addr: %s
  serf_addr: %s
  join: [%s]
  bootstrap_expect: %d
  offsets_partitions: 3
  reconcile_interval: 200ms
  absent_grace: 5s
  raft: %s
  gossip: %s
`, dataDir, kafkaAddr, id, raftAddr, rpcAddr, serf[id-1], strings.Join(serf, ", "), len(serf), Raft().yaml(), Gossip().yaml())
}

// PartitionStates asks the first of addrs that answers for the topic's
// leaders and ISRs.
func PartitionStates(ctx context.Context, addrs []string, topic string) (map[int32]kmsg.MetadataResponseTopicPartition, error) {
	var lastErr error
	for _, addr := range addrs {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			return nil, err
		}
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := req.RequestWith(rctx, cl)
		cancel()
		cl.Close()
		if err != nil {
			lastErr = err
			continue
		}
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
			lastErr = fmt.Errorf("metadata for %s from %s: %+v", topic, addr, resp.Topics)
			continue
		}
		out := map[int32]kmsg.MetadataResponseTopicPartition{}
		for _, p := range resp.Topics[0].Partitions {
			out[p.Partition] = p
		}
		return out, nil
	}
	return nil, lastErr
}

// CreateClusterTopic creates topic with replication factor rf
// (min.insync.replicas = min(rf, 2), plus configs), retrying while the
// cluster forms, then waits until every broker describes it with a leader
// and rf in-sync replicas for each partition. It returns an error rather
// than failing a test, so the benchmarks use it too; a minute at most.
func CreateClusterTopic(ctx context.Context, addrs []string, topic string, parts int32, rf int16, configs ...[2]string) error {
	adm, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	created := PollContext(ctx, func() bool {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, parts, rf
		for _, kv := range append([][2]string{{"min.insync.replicas", fmt.Sprint(min(rf, 2))}}, configs...) {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			c.Name, c.Value = kv[0], kmsg.StringPtr(kv[1])
			rt.Configs = append(rt.Configs, c)
		}
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 10_000
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		resp, err := req.RequestWith(rctx, adm)
		if err == nil {
			err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
		}
		last = err
		return err == nil || errors.Is(err, kerr.TopicAlreadyExists)
	})
	if !created {
		return fmt.Errorf("create topic %s: %w (last: %v)", topic, ctx.Err(), last)
	}
	for _, addr := range addrs {
		described := PollContext(ctx, func() bool {
			st, err := PartitionStates(ctx, []string{addr}, topic)
			last = err
			ok := err == nil && len(st) == int(parts)
			for _, p := range st {
				ok = ok && p.Leader > 0 && len(p.ISR) >= int(rf)
			}
			return ok
		})
		if !described {
			return fmt.Errorf("broker %s never described %s with leaders and %d in-sync replicas: %v", addr, topic, rf, last)
		}
	}
	return nil
}

// InSync reports whether every partition of topics has at least replicas
// members in its ISR. Kill tests wait for it before each kill: killing the
// only in-sync replica rightly leaves a partition without a leader (unclean
// election off) until that broker returns.
func InSync(ctx context.Context, addrs []string, replicas int, topics ...string) bool {
	for _, topic := range topics {
		st, err := PartitionStates(ctx, addrs, topic)
		if err != nil || len(st) == 0 {
			return false
		}
		for _, p := range st {
			if len(p.ISR) < replicas {
				return false
			}
		}
	}
	return true
}

// keepFailed copies a failed test's cluster directory (every broker's
// config, full log and data) under $TRIBUTARY_KEEP_FAILED, when it is set,
// for a post-mortem of a failure too rare to reproduce at will.
func keepFailed(t *testing.T, dir string) {
	root := os.Getenv("TRIBUTARY_KEEP_FAILED")
	if root == "" {
		return
	}
	dst := filepath.Join(root, fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano()))
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Logf("keeping the cluster's files: %v", err)
		return
	}
	t.Logf("the cluster's configs, logs and data are kept in %s", dst)
}
