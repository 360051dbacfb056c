package server

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
)

var flipByte = testkit.FlipByte

func produceValues(t testing.TB, addr, topic string, n, size int) {
	t.Helper()
	cl := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0),
		kgo.ProducerBatchMaxBytes(4096))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var recs []*kgo.Record
	rng := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	for range n {
		v := make([]byte, size) // incompressible, so segments fill
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		recs = append(recs, &kgo.Record{Value: v})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func fetchAt(t testing.TB, c *rawConn, topic string, offset int64) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxBytes = 11, -1, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = offset, 1<<20, -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return c.roundTrip(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
}

func healthz(t testing.TB, addr string) (int, string) {
	t.Helper()
	return testkit.Get(t, "http://"+addr+"/healthz")
}

// Issue 12, scenario 2 on the core: bit rot inside a sealed segment whose
// index is intact. Before, /healthz said ok and the damaged batch was served
// (kcat: "failed CRC32C check"). Now the scrubber finds it, /healthz names
// the partition and byte, a fetch of that range answers CORRUPT_MESSAGE
// instead of garbage, and the records after it are still served.
func TestCorruptBatchReportedNotServed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.DefaultPartitions = 1
	cfg.Log.SegmentBytes = 16 << 10
	srv := startServer(t, cfg)
	createTopic(t, newClient(t, srv.Addr()), "rot", 1, nil)
	produceValues(t, srv.Addr(), "rot", 400, 200)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	l, _ := srv.Topics().Partition("rot", 0)
	segs := sealedSegments(t, l.Dir(), 2)
	flipByte(t, segs[1], 100) // a record byte of the second segment's first batch

	cfg.Scrub = storage.ScrubConfig{Interval: 50 * time.Millisecond, BytesPerSec: 64 << 20}
	srv = startServer(t, cfg)
	var code int
	var body string
	testkit.Poll(20*time.Second, func() bool {
		code, body = healthz(t, srv.HTTPAddr())
		return code != http.StatusOK
	})
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"status": "failing"`) ||
		!strings.Contains(body, "rot/0 damaged") || !strings.Contains(body, segs[1]) {
		t.Fatalf("healthz %d: %s", code, body)
	}
	if got := metricValue(t, srv, "tributary_core_damaged_ranges"); got != 1 {
		t.Errorf("tributary_core_damaged_ranges = %v, want 1", got)
	}
	l, _ = srv.Topics().Partition("rot", 0)
	d := l.Damage()[0]
	c := dialRaw(t, srv.Addr())
	if p := fetchAt(t, c, "rot", d.From); p.ErrorCode != kerr.CorruptMessage.Code || len(p.RecordBatches) != 0 {
		t.Fatalf("fetch of the damaged range: %v, %d bytes", kerr.ErrorForCode(p.ErrorCode), len(p.RecordBatches))
	}
	if p := fetchAt(t, c, "rot", 0); p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		t.Fatalf("fetch before the damage: %v, %d bytes", kerr.ErrorForCode(p.ErrorCode), len(p.RecordBatches))
	}
	if p := fetchAt(t, c, "rot", d.To); p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		t.Fatalf("fetch after the damage at %d: %v, %d bytes", d.To, kerr.ErrorForCode(p.ErrorCode), len(p.RecordBatches))
	}
}

func sealedSegments(t testing.TB, dir string, want int) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			segs = append(segs, dir+"/"+e.Name())
		}
	}
	if len(segs) < want+1 {
		t.Fatalf("want at least %d sealed segments in %s, have %d segments", want, dir, len(segs))
	}
	return segs[:len(segs)-1]
}

// A follower whose copy of a partition is damaged drops it from the damage
// on and fetches it again from the leader (Kafka truncates and
// re-replicates); afterwards its bytes equal the leader's and /healthz-level
// damage is gone.
func TestFollowerReplacesDamagedRange(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	tb.createTopic("heal", 1, 3, 2)
	produceValues(t, tb.addrs()[0], "heal", 1500, 1000)
	leader := tb.srvs[0].Cluster().Metadata().Topics["heal"].Partitions[0].Leader
	var follower *Server
	for i, s := range tb.srvs {
		if int32(i+1) != leader {
			follower = s
			break
		}
	}
	fl, _ := follower.Topics().Partition("heal", 0)
	ll, _ := tb.byID(leader).Topics().Partition("heal", 0)
	tb.waitFor("the follower to catch up", 20*time.Second, func() bool { return fl.NextOffset() == ll.NextOffset() })
	segs := sealedSegments(t, fl.Dir(), 1)
	flipByte(t, segs[0], 200)
	if err := fl.VerifySealed(); err == nil {
		t.Fatal("the scrub did not find the damage")
	}
	tb.waitFor("the follower to replace its damaged range", 30*time.Second, func() bool {
		if len(fl.Damage()) > 0 || fl.NextOffset() != ll.NextOffset() {
			return false
		}
		a, err1 := fl.Read(0, 1<<30, -1)
		b, err2 := ll.Read(0, 1<<30, -1)
		return err1 == nil && err2 == nil && bytes.Equal(a, b)
	})
	if err := fl.VerifySealed(); err != nil {
		t.Fatalf("the replaced copy does not verify: %v", err)
	}
	t.Logf("follower re-fetched from offset 0 up to %d", fl.NextOffset())
}
