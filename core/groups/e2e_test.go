package groups_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/groups"
	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/internal/testkit/coretest"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
)

// End-to-end: franz-go consumer groups against the real broker on
// loopback, with this package as its coordinator.

const (
	e2eTopic      = "events"
	e2ePartitions = 4
	e2eLimit      = 60 * time.Second
)

func startBroker(t *testing.T, dir string) *server.Server {
	t.Helper()
	return startBrokerWith(t, dir, groups.Config{InitialRebalanceDelay: 200 * time.Millisecond})
}

func startBrokerWith(t *testing.T, dir string, gcfg groups.Config) *server.Server {
	t.Helper()
	cfg := server.Config{
		DataDir:           dir,
		KafkaAddr:         "127.0.0.1:0",
		DefaultPartitions: e2ePartitions,
		Log:               storage.LogConfig{SegmentBytes: 1 << 20},
	}
	return coretest.Start(t, cfg, func(store *meta.Store, logger *slog.Logger) server.GroupCoordinator {
		return groups.NewCoordinator(store, gcfg, logger)
	})
}

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.FetchMaxWait(200 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce writes n records spread evenly over the partitions, values
// "<prefix>-<i>".
func produce(t *testing.T, cl *kgo.Client, prefix string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eLimit)
	defer cancel()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: e2eTopic, Partition: int32(i % e2ePartitions), Value: fmt.Appendf(nil, "%s-%d", prefix, i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consumer is one group member polling in its own goroutine.
type consumer struct {
	cl      *kgo.Client
	mu      sync.Mutex
	seen    map[string]int
	owned   map[int32]bool
	revokes int

	stopPolling func()
	stopOnce    sync.Once
}

func startConsumer(t *testing.T, addr, group string, balancer kgo.GroupBalancer, extra ...kgo.Opt) *consumer {
	t.Helper()
	c := &consumer{seen: make(map[string]int), owned: make(map[int32]bool)}
	opts := []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(e2eTopic),
		kgo.Balancers(balancer),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.SessionTimeout(6 * time.Second),
		kgo.AutoCommitInterval(200 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, p := range m[e2eTopic] {
				c.owned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
			// Commit what was consumed before giving partitions away,
			// so the next owner does not re-read it.
			_ = cl.CommitMarkedOffsets(ctx)
			c.mu.Lock()
			defer c.mu.Unlock()
			c.revokes++
			for _, p := range m[e2eTopic] {
				delete(c.owned, p)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, p := range m[e2eTopic] {
				delete(c.owned, p)
			}
		}),
	}
	c.cl = newClient(t, addr, append(opts, extra...)...)
	c.stopPolling = testkit.Run(t, "consumer", func(ctx context.Context) error {
		for ctx.Err() == nil {
			fs := c.cl.PollFetches(ctx)
			c.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { c.seen[string(r.Value)]++ })
			c.mu.Unlock()
		}
		return nil
	})
	t.Cleanup(c.stop)
	return c
}

// stop ends polling, commits and leaves the group.
func (c *consumer) stop() {
	c.stopOnce.Do(func() {
		c.stopPolling()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.cl.CommitUncommittedOffsets(ctx)
		c.cl.Close()
	})
}

func (c *consumer) revoked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.revokes
}

func (c *consumer) snapshot() (seen map[string]int, owned int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen = make(map[string]int, len(c.seen))
	for k, v := range c.seen {
		seen[k] = v
	}
	return seen, len(c.owned)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, e2eLimit, what, cond)
}

// committed reads the group's committed offsets through the broker.
func committed(t *testing.T, cl *kgo.Client, group string) map[int32]int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	out := make(map[int32]int64)
	for _, g := range resp.Groups {
		for _, tp := range g.Topics {
			for _, p := range tp.Partitions {
				out[p.Partition] = p.Offset
			}
		}
	}
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			out[p.Partition] = p.Offset
		}
	}
	return out
}

func TestConsumerGroupsEndToEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		balancer kgo.GroupBalancer
	}{
		{"eager-range", kgo.RangeBalancer()},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			srv := startBroker(t, dir)
			group := "analytics-" + tc.name
			producer := newClient(t, srv.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.AllowAutoTopicCreation())
			produce(t, producer, "first", 200)

			a := startConsumer(t, srv.Addr(), group, tc.balancer)
			waitFor(t, "first consumer reads the first half", func() bool {
				seen, owned := a.snapshot()
				return len(seen) == 200 && owned == e2ePartitions
			})

			// A second member joins: the partitions are split between them.
			b := startConsumer(t, srv.Addr(), group, tc.balancer)
			waitFor(t, "partitions split between two members", func() bool {
				_, ownedA := a.snapshot()
				_, ownedB := b.snapshot()
				return ownedA == e2ePartitions/2 && ownedB == e2ePartitions/2
			})
			produce(t, producer, "second", 200)
			waitFor(t, "both halves consumed", func() bool {
				seenA, _ := a.snapshot()
				seenB, _ := b.snapshot()
				n := 0
				for i := range 200 {
					k := fmt.Sprintf("second-%d", i)
					if seenA[k] > 0 || seenB[k] > 0 {
						n++
					}
				}
				return n == 200
			})
			seenA, _ := a.snapshot()
			seenB, _ := b.snapshot()
			for i := range 200 {
				k := fmt.Sprintf("second-%d", i)
				if seenA[k] > 0 && seenB[k] > 0 {
					t.Errorf("%s consumed by both members after the rebalance", k)
				}
			}
			gotA, gotB := 0, 0
			for k := range seenA {
				if strings.HasPrefix(k, "second-") {
					gotA++
				}
			}
			for k := range seenB {
				if strings.HasPrefix(k, "second-") {
					gotB++
				}
			}
			if gotA != 100 || gotB != 100 {
				t.Errorf("second half split %d/%d, want 100/100", gotA, gotB)
			}

			// Auto-commits reach the end of every partition; members
			// then leave without moving them back.
			waitFor(t, "auto-commits cover everything", func() bool {
				offs := committed(t, producer, group)
				for p := int32(0); p < e2ePartitions; p++ {
					if offs[p] != 100 {
						return false
					}
				}
				return true
			})
			a.stop()
			b.stop()
			offs := committed(t, producer, group)
			for p := int32(0); p < e2ePartitions; p++ {
				if offs[p] != 100 {
					t.Errorf("partition %d committed %d, want 100 (all %v)", p, offs[p], offs)
				}
			}

			// After a broker restart a new member resumes at the commits:
			// it reads only what is produced afterwards.
			if err := srv.Close(); err != nil {
				t.Fatalf("close broker: %v", err)
			}
			srv = startBroker(t, dir)
			producer = newClient(t, srv.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			produce(t, producer, "third", 8)
			c := startConsumer(t, srv.Addr(), group, tc.balancer)
			waitFor(t, "resumed consumer reads the new records", func() bool {
				seen, _ := c.snapshot()
				return len(seen) >= 8
			})
			seen, _ := c.snapshot()
			for k := range seen {
				if !strings.HasPrefix(k, "third-") {
					t.Errorf("resumed consumer re-read %s", k)
				}
			}
		})
	}
}

// TestStaticMembersEndToEnd restarts a static franz-go member within its
// session timeout (no rebalance: the other member keeps its partitions and
// the restarted one gets its own back), then stops it for good (its
// session expires and the survivor takes everything).
func TestStaticMembersEndToEnd(t *testing.T) {
	t.Parallel()
	srv := startBrokerWith(t, t.TempDir(), groups.Config{
		InitialRebalanceDelay: 300 * time.Millisecond,
		MinSessionTimeout:     500 * time.Millisecond,
	})
	producer := newClient(t, srv.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.AllowAutoTopicCreation())
	produce(t, producer, "r", 8)
	const group = "static-e2e"
	static := func(id string) []kgo.Opt {
		return []kgo.Opt{kgo.InstanceID(id), kgo.SessionTimeout(3 * time.Second)}
	}
	a := startConsumer(t, srv.Addr(), group, kgo.RangeBalancer(), static("a")...)
	b := startConsumer(t, srv.Addr(), group, kgo.RangeBalancer(), static("b")...)
	waitFor(t, "partitions split", func() bool {
		_, ownedA := a.snapshot()
		_, ownedB := b.snapshot()
		return ownedA == 2 && ownedB == 2
	})
	revokesA := a.revoked()

	b.stop() // a static member does not leave the group on close
	b = startConsumer(t, srv.Addr(), group, kgo.RangeBalancer(), static("b")...)
	waitFor(t, "restarted static member gets its partitions back", func() bool {
		_, owned := b.snapshot()
		return owned == 2
	})
	if got := a.revoked(); got != revokesA {
		t.Fatalf("the other member was rebalanced (%d revokes, was %d)", got, revokesA)
	}
	if _, owned := a.snapshot(); owned != 2 {
		t.Fatalf("the other member owns %d partitions", owned)
	}

	b.stop()
	waitFor(t, "survivor takes every partition after the session expires", func() bool {
		_, owned := a.snapshot()
		return owned == e2ePartitions
	})
}

// kcatConsume runs kcat (librdkafka) as a balanced group consumer until it
// reaches the end of every assigned partition, and returns the values.
func kcatConsume(t *testing.T, addr, group string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", "-b", addr, "-G", group, "-X", "auto.offset.reset=earliest", "-e", "-q",
		"-f", "%s\n", "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=200", e2eTopic)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat: %v\nstderr: %s", err, errb.String())
	}
	var vals []string
	for _, l := range strings.Split(out.String(), "\n") {
		if l != "" {
			vals = append(vals, l)
		}
	}
	sort.Strings(vals)
	return vals
}

// TestKcatConsumerGroup drives the coordinator with librdkafka's classic
// group consumer: it reads everything once, commits, and a second run
// resumes from the commits.
func TestKcatConsumerGroup(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed")
	}
	srv := startBrokerWith(t, t.TempDir(), groups.Config{InitialRebalanceDelay: -1})
	producer := newClient(t, srv.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.AllowAutoTopicCreation())
	produce(t, producer, "k", 40)
	const group = "kcat-group"
	if got := kcatConsume(t, srv.Addr(), group); len(got) != 40 {
		t.Fatalf("first run read %d records, want 40: %v", len(got), got)
	}
	offs := committed(t, producer, group)
	for p := int32(0); p < e2ePartitions; p++ {
		if offs[p] != 10 {
			t.Fatalf("partition %d committed at %d, want 10 (%v)", p, offs[p], offs)
		}
	}
	produce(t, producer, "more", 4)
	got := kcatConsume(t, srv.Addr(), group)
	want := []string{"more-0", "more-1", "more-2", "more-3"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("second run read %v, want %v", got, want)
	}
}
