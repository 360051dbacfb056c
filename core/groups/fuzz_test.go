package groups

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzHandle decodes arbitrary request bodies for every served API and
// feeds them to one coordinator: whatever clients send, Handle must not
// panic or hang, and must answer with an encodable response of the
// request's version.
func FuzzHandle(f *testing.F) {
	keys := make([]int16, 0, len(versions))
	for k := range versions {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })

	seed := func(req kmsg.Request) {
		for i, k := range keys {
			if k == req.Key() {
				f.Add(byte(i), byte(req.GetVersion()), req.AppendTo(nil))
			}
		}
	}
	j := joinReq("fz", "", 9, 100*time.Millisecond, "range")
	seed(j)
	seed(syncReq("fz", "m", 1, map[string]string{"m": "a"}))
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(4)
	hb.Group, hb.MemberID = "fz", "m"
	seed(hb)
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.SetVersion(8)
	oc.Group, oc.Generation = "fz", -1
	ot := kmsg.NewOffsetCommitRequestTopic()
	ot.Topic = "t"
	op := kmsg.NewOffsetCommitRequestTopicPartition()
	op.Offset = 5
	ot.Partitions = append(ot.Partitions, op)
	oc.Topics = append(oc.Topics, ot)
	seed(oc)
	of := kmsg.NewPtrOffsetFetchRequest()
	of.SetVersion(8)
	og := kmsg.NewOffsetFetchRequestGroup()
	og.Group = "fz"
	of.Groups = append(of.Groups, og)
	seed(of)
	lg := kmsg.NewPtrLeaveGroupRequest()
	lg.SetVersion(5)
	lg.Group = "fz"
	lg.Members = append(lg.Members, kmsg.NewLeaveGroupRequestMember())
	seed(lg)
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.SetVersion(5)
	dg.Groups = []string{"fz"}
	seed(dg)
	seed(kmsg.NewPtrListGroupsRequest())
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"fz"}
	seed(del)

	c, _ := newTestCoordinator(f, testConfig())
	f.Fuzz(func(t *testing.T, keyIdx, version byte, body []byte) {
		key := keys[int(keyIdx)%len(keys)]
		vr := versions[key]
		req := kmsg.RequestForKey(key)
		req.SetVersion(vr[0] + int16(version)%(vr[1]-vr[0]+1))
		if err := req.ReadFrom(body); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		resp, err := c.Handle(ctx, req)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("key %d v%d: %v", key, req.GetVersion(), err)
			}
			return
		}
		if resp.GetVersion() != req.GetVersion() || resp.Key() != key {
			t.Fatalf("key %d v%d answered with key %d v%d", key, req.GetVersion(), resp.Key(), resp.GetVersion())
		}
		resp.AppendTo(nil)
	})
}
