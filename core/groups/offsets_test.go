package groups

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
)

// commit commits one offset and returns its partition's error code.
func commit(t *testing.T, c *Coordinator, group, memberID string, generation int32, topic string, partition int32, offset int64) int16 {
	t.Helper()
	r := kmsg.NewPtrOffsetCommitRequest()
	r.SetVersion(8)
	r.Group, r.MemberID, r.Generation = group, memberID, generation
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = partition, offset, 3
	md := "md"
	rp.Metadata = &md
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	resp := do[*kmsg.OffsetCommitResponse](t, c, r)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("commit response shape: %+v", resp)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// fetchV7 fetches partitions of one group with the pre-v8 layout.
func fetchV7(t *testing.T, c *Coordinator, group, topic string, partitions ...int32) map[int32]kmsg.OffsetFetchResponseTopicPartition {
	t.Helper()
	r := kmsg.NewPtrOffsetFetchRequest()
	r.SetVersion(7)
	r.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, partitions
	r.Topics = append(r.Topics, rt)
	resp := do[*kmsg.OffsetFetchResponse](t, c, r)
	wantCode(t, "offset fetch", resp.ErrorCode, nil)
	out := make(map[int32]kmsg.OffsetFetchResponseTopicPartition)
	for _, st := range resp.Topics {
		for _, p := range st.Partitions {
			out[p.Partition] = p
		}
	}
	return out
}

func TestOffsetCommitFetchRoundTripAndRestart(t *testing.T) {
	t.Parallel()
	c, path := newTestCoordinator(t, testConfig())
	const group = "offsets"
	ids, gen := stableGroup(t, c, group, 1, session)
	wantCode(t, "commit p0", commit(t, c, group, ids[0], gen, "sensors", 0, 42), nil)
	wantCode(t, "commit p1", commit(t, c, group, ids[0], gen, "sensors", 1, 7), nil)
	wantCode(t, "commit again p0", commit(t, c, group, ids[0], gen, "sensors", 0, 43), nil)

	got := fetchV7(t, c, group, "sensors", 0, 1, 2)
	if got[0].Offset != 43 || got[0].LeaderEpoch != 3 || *got[0].Metadata != "md" {
		t.Fatalf("p0: %+v", got[0])
	}
	if got[1].Offset != 7 {
		t.Fatalf("p1: %+v", got[1])
	}
	if got[2].Offset != -1 || got[2].LeaderEpoch != -1 || got[2].ErrorCode != 0 {
		t.Fatalf("uncommitted p2: %+v", got[2])
	}

	// v8 asks for several groups at once; nil topics means everything.
	r := kmsg.NewPtrOffsetFetchRequest()
	r.SetVersion(8)
	all := kmsg.NewOffsetFetchRequestGroup()
	all.Group = group
	none := kmsg.NewOffsetFetchRequestGroup()
	none.Group = "never-committed"
	rt := kmsg.NewOffsetFetchRequestGroupTopic()
	rt.Topic, rt.Partitions = "sensors", []int32{0}
	none.Topics = append(none.Topics, rt)
	r.Groups = []kmsg.OffsetFetchRequestGroup{all, none}
	resp := do[*kmsg.OffsetFetchResponse](t, c, r)
	if len(resp.Groups) != 2 {
		t.Fatalf("v8 fetch answered %d groups", len(resp.Groups))
	}
	g0 := resp.Groups[0]
	if g0.Group != group || len(g0.Topics) != 1 || len(g0.Topics[0].Partitions) != 2 ||
		g0.Topics[0].Partitions[0].Offset != 43 || g0.Topics[0].Partitions[1].Offset != 7 {
		t.Fatalf("v8 fetch all: %+v", g0)
	}
	if p := resp.Groups[1].Topics[0].Partitions[0]; p.Offset != -1 {
		t.Fatalf("v8 fetch of a group without commits: %+v", p)
	}

	// A new coordinator on the same file sees the offsets and the group.
	c.Close()
	if err := c.store.Close(); err != nil {
		t.Fatal(err)
	}
	store := openStore(t, path)
	c2 := NewCoordinator(store, testConfig(), testkit.Logger(t))
	t.Cleanup(func() { c2.Close(); store.Close() })
	got = fetchV7(t, c2, group, "sensors", 0, 1)
	if got[0].Offset != 43 || got[1].Offset != 7 {
		t.Fatalf("after restart: %+v", got)
	}
	if d := describeGroup(t, c2, group); d.State != "Empty" {
		t.Fatalf("restored group state %s", d.State)
	}
	lr := kmsg.NewPtrListGroupsRequest()
	lr.SetVersion(5)
	lr.StatesFilter = []string{"empty"}
	list := do[*kmsg.ListGroupsResponse](t, c2, lr)
	if len(list.Groups) != 1 || list.Groups[0].Group != group || list.Groups[0].GroupType != "classic" {
		t.Fatalf("list after restart: %+v", list.Groups)
	}
	// The old member id means nothing to the new coordinator.
	wantCode(t, "commit with old member", commit(t, c2, group, ids[0], gen, "sensors", 0, 50), kerr.UnknownMemberID)
}

func TestSimpleCommitsAndDeleteGroups(t *testing.T) {
	t.Parallel()
	c, _ := newTestCoordinator(t, testConfig())
	// Generation -1 with no member: a consumer managing its own partitions.
	wantCode(t, "simple commit", commit(t, c, "simple", "", -1, "t", 0, 10), nil)
	wantCode(t, "generation on unknown group", commit(t, c, "unknown", "m", 5, "t", 0, 10), kerr.IllegalGeneration)
	if got := fetchV7(t, c, "simple", "t", 0); got[0].Offset != 10 {
		t.Fatalf("simple commit fetched %+v", got[0])
	}
	if d := describeGroup(t, c, "simple"); d.State != "Empty" {
		t.Fatalf("simple group state %s", d.State)
	}

	ids, _ := stableGroup(t, c, "busy", 1, session)
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.SetVersion(2)
	del.Groups = []string{"simple", "busy", "missing"}
	resp := do[*kmsg.DeleteGroupsResponse](t, c, del)
	wantCode(t, "delete empty", resp.Groups[0].ErrorCode, nil)
	wantCode(t, "delete busy", resp.Groups[1].ErrorCode, kerr.NonEmptyGroup)
	wantCode(t, "delete missing", resp.Groups[2].ErrorCode, kerr.GroupIDNotFound)
	if got := fetchV7(t, c, "simple", "t", 0); got[0].Offset != -1 {
		t.Fatalf("offset survived delete: %+v", got[0])
	}
	dr := kmsg.NewPtrDescribeGroupsRequest()
	dr.SetVersion(6)
	dr.Groups = []string{"simple"}
	wantCode(t, "describe deleted", do[*kmsg.DescribeGroupsResponse](t, c, dr).Groups[0].ErrorCode, kerr.GroupIDNotFound)
	_ = ids

	lr := kmsg.NewPtrListGroupsRequest()
	lr.SetVersion(4)
	list := do[*kmsg.ListGroupsResponse](t, c, lr)
	if len(list.Groups) != 1 || list.Groups[0].Group != "busy" || list.Groups[0].GroupState != "Stable" || list.Groups[0].ProtocolType != "consumer" {
		t.Fatalf("list: %+v", list.Groups)
	}
}

func TestOffsetCommitValidation(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.PartitionExists = func(topic string, partition int32) bool { return topic == "t" && partition < 2 }
	c, _ := newTestCoordinator(t, cfg)
	wantCode(t, "unknown partition", commit(t, c, "v", "", -1, "t", 5, 1), kerr.UnknownTopicOrPartition)
	wantCode(t, "unknown topic", commit(t, c, "v", "", -1, "nope", 0, 1), kerr.UnknownTopicOrPartition)
	wantCode(t, "empty group", commit(t, c, "", "", -1, "t", 0, 1), kerr.InvalidGroupID)

	r := kmsg.NewPtrOffsetCommitRequest()
	r.SetVersion(2)
	r.Group, r.Generation = "v", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	big := strings.Repeat("x", maxMetadataSize+1)
	p0 := kmsg.NewOffsetCommitRequestTopicPartition()
	p0.Partition, p0.Offset, p0.Metadata = 0, 1, &big
	p1 := kmsg.NewOffsetCommitRequestTopicPartition()
	p1.Partition, p1.Offset = 1, 2
	rt.Partitions = append(rt.Partitions, p0, p1)
	r.Topics = append(r.Topics, rt)
	resp := do[*kmsg.OffsetCommitResponse](t, c, r)
	wantCode(t, "large metadata", resp.Topics[0].Partitions[0].ErrorCode, kerr.OffsetMetadataTooLarge)
	wantCode(t, "good partition next to it", resp.Topics[0].Partitions[1].ErrorCode, nil)
	got := fetchV7(t, c, "v", "t", 0, 1)
	if got[0].Offset != -1 || got[1].Offset != 2 || got[1].LeaderEpoch != -1 {
		t.Fatalf("fetched %+v", got)
	}
}

// gathered returns the value of every gathered series by name and
// label values, e.g. "tributary_core_groups{Stable}".
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if len(m.GetLabel()) > 0 {
				key += "{" + m.GetLabel()[0].GetValue() + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Registerer = reg
	c, _ := newTestCoordinator(t, cfg)
	ids, gen := stableGroup(t, c, "m", 2, session)
	wantCode(t, "commit", commit(t, c, "m", ids[0], gen, "t", 0, 1), nil)
	wantCode(t, "simple commit", commit(t, c, "idle", "", -1, "t", 0, 1), nil)
	got := gathered(t, reg)
	want := map[string]float64{
		"tributary_core_group_offset_commits_total": 2,
		"tributary_core_group_rebalances_total":     1,
		"tributary_core_group_members":              2,
		"tributary_core_groups{Stable}":             1,
		"tributary_core_groups{Empty}":              1,
		"tributary_core_groups{PreparingRebalance}": 0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	// A second coordinator registers on its own registry without clashing.
	cfg.Registerer = prometheus.NewRegistry()
	newTestCoordinator(t, cfg)
}

func TestOffsetDelete(t *testing.T) {
	t.Parallel()
	c, _ := newTestCoordinator(t, testConfig())
	del := func(group string, tps map[string][]int32) *kmsg.OffsetDeleteResponse {
		r := kmsg.NewPtrOffsetDeleteRequest()
		r.Group = group
		for topic, ps := range tps {
			rt := kmsg.NewOffsetDeleteRequestTopic()
			rt.Topic = topic
			for _, p := range ps {
				rp := kmsg.NewOffsetDeleteRequestTopicPartition()
				rp.Partition = p
				rt.Partitions = append(rt.Partitions, rp)
			}
			r.Topics = append(r.Topics, rt)
		}
		return do[*kmsg.OffsetDeleteResponse](t, c, r)
	}
	wantCode(t, "unknown group", del("nope", map[string][]int32{"a": {0}}).ErrorCode, kerr.GroupIDNotFound)

	// An idle group: offsets go, the rest stay.
	wantCode(t, "commit a/0", commit(t, c, "idle", "", -1, "a", 0, 1), nil)
	wantCode(t, "commit a/1", commit(t, c, "idle", "", -1, "a", 1, 2), nil)
	resp := del("idle", map[string][]int32{"a": {0}})
	wantCode(t, "delete idle", resp.ErrorCode, nil)
	wantCode(t, "delete idle a/0", resp.Topics[0].Partitions[0].ErrorCode, nil)
	if got := fetchV7(t, c, "idle", "a", 0, 1); got[0].Offset != -1 || got[1].Offset != 2 {
		t.Fatalf("after delete: %+v", got)
	}

	// A live consumer group keeps offsets of topics it subscribes to.
	md := kmsg.NewConsumerMemberMetadata()
	md.Topics = []string{"sub"}
	j := joinReq("live", "", 3, session)
	j.Protocols[0].Metadata = md.AppendTo(nil)
	jr := do[*kmsg.JoinGroupResponse](t, c, j)
	wantCode(t, "join", jr.ErrorCode, nil)
	do[*kmsg.SyncGroupResponse](t, c, syncReq("live", jr.MemberID, jr.Generation, nil))
	wantCode(t, "commit sub", commit(t, c, "live", jr.MemberID, jr.Generation, "sub", 0, 5), nil)
	wantCode(t, "commit other", commit(t, c, "live", jr.MemberID, jr.Generation, "other", 0, 6), nil)
	resp = del("live", map[string][]int32{"sub": {0}})
	wantCode(t, "delete subscribed", resp.Topics[0].Partitions[0].ErrorCode, kerr.GroupSubscribedToTopic)
	resp = del("live", map[string][]int32{"other": {0}})
	wantCode(t, "delete unsubscribed", resp.Topics[0].Partitions[0].ErrorCode, nil)
	if got := fetchV7(t, c, "live", "sub", 0); got[0].Offset != 5 {
		t.Fatalf("subscribed offset %+v", got[0])
	}
	if got := fetchV7(t, c, "live", "other", 0); got[0].Offset != -1 {
		t.Fatalf("unsubscribed offset %+v", got[0])
	}
}

func TestOffsetRetention(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.OffsetRetention = 500 * time.Millisecond
	c, _ := newTestCoordinator(t, cfg)
	wantCode(t, "simple commit", commit(t, c, "idle", "", -1, "t", 0, 1), nil)
	ids, gen := stableGroup(t, c, "busy", 1, session)
	wantCode(t, "member commit", commit(t, c, "busy", ids[0], gen, "t", 0, 2), nil)

	eventually(t, "idle group expired", func() bool {
		return fetchV7(t, c, "idle", "t", 0)[0].Offset == -1
	})
	if d := describeGroup(t, c, "idle"); d.State != "Dead" {
		t.Fatalf("expired group state %s", d.State)
	}
	// A group with members keeps its offsets however old they are.
	time.Sleep(cfg.OffsetRetention)
	wantCode(t, "heartbeat", heartbeat(t, c, "busy", ids[0], gen), nil)
	if got := fetchV7(t, c, "busy", "t", 0)[0].Offset; got != 2 {
		t.Fatalf("active group's offset %d", got)
	}
	groups, err := c.store.Groups()
	if err != nil || len(groups) != 1 || groups[0] != "busy" {
		t.Fatalf("groups in store: %v %v", groups, err)
	}
}
