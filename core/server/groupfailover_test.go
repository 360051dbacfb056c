package server

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestCoordinatorFailoverKeepsGeneration: a group made Stable on one
// coordinator carries on, same member and generation, on the broker that
// takes over its offsets partition when the coordinator dies: a heartbeat
// there succeeds and the member resyncs its assignment without rejoining.
func TestCoordinatorFailoverKeepsGeneration(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	cl := newClient(t, tb.addrs()[0])
	ctx := testkit.Context(t, 60*time.Second)
	const group = "keepers"

	// kgo routes group requests to the coordinator and follows it when it
	// moves; retry the codes a coordinator move answers with.
	retry := func(what string, req kmsg.Request, code func(kmsg.Response) int16) kmsg.Response {
		t.Helper()
		var resp kmsg.Response
		testkit.Eventually(t, 30*time.Second, what, func() bool {
			var err error
			resp, err = cl.Request(ctx, req)
			if err != nil {
				return false
			}
			switch c := code(resp); {
			case errors.Is(kerr.ErrorForCode(c), kerr.NotCoordinator), errors.Is(kerr.ErrorForCode(c), kerr.CoordinatorNotAvailable),
				errors.Is(kerr.ErrorForCode(c), kerr.CoordinatorLoadInProgress):
				return false
			}
			return true
		})
		return resp
	}
	join := func(member string) *kmsg.JoinGroupResponse {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30_000, 10_000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{0, 1}
		req.Protocols = append(req.Protocols, p)
		return retry("join "+group, req, func(r kmsg.Response) int16 { return r.(*kmsg.JoinGroupResponse).ErrorCode }).(*kmsg.JoinGroupResponse)
	}
	jr := join("")
	if jr.ErrorCode == kerr.MemberIDRequired.Code {
		jr = join(jr.MemberID)
	}
	if jr.ErrorCode != 0 || jr.LeaderID != jr.MemberID {
		t.Fatalf("join: %v, leader %q member %q", kerr.ErrorForCode(jr.ErrorCode), jr.LeaderID, jr.MemberID)
	}
	member, gen := jr.MemberID, jr.Generation
	sync := func() *kmsg.SyncGroupResponse {
		req := kmsg.NewPtrSyncGroupRequest()
		req.Group, req.MemberID, req.Generation = group, member, gen
		a := kmsg.NewSyncGroupRequestGroupAssignment()
		a.MemberID, a.MemberAssignment = member, []byte("mine")
		req.GroupAssignment = append(req.GroupAssignment, a)
		return retry("sync "+group, req, func(r kmsg.Response) int16 { return r.(*kmsg.SyncGroupResponse).ErrorCode }).(*kmsg.SyncGroupResponse)
	}
	if sr := sync(); sr.ErrorCode != 0 {
		t.Fatalf("sync: %v", kerr.ErrorForCode(sr.ErrorCode))
	}

	find := kmsg.NewPtrFindCoordinatorRequest()
	find.CoordinatorKey = group
	fr := retry("find coordinator", find, func(r kmsg.Response) int16 { return r.(*kmsg.FindCoordinatorResponse).ErrorCode }).(*kmsg.FindCoordinatorResponse)
	coord := tb.byID(fr.NodeID)
	if err := coord.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("closed coordinator %d of %s (generation %d)", fr.NodeID, group, gen)

	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = group, member, gen
	code := retry("a heartbeat on the new coordinator", hb, func(r kmsg.Response) int16 { return r.(*kmsg.HeartbeatResponse).ErrorCode }).(*kmsg.HeartbeatResponse).ErrorCode
	if code != 0 {
		t.Fatalf("heartbeat in generation %d on the new coordinator: %v, want none", gen, kerr.ErrorForCode(code))
	}
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.MemberID, req.Generation = group, member, gen
	sr := retry("resync on the new coordinator", req, func(r kmsg.Response) int16 { return r.(*kmsg.SyncGroupResponse).ErrorCode }).(*kmsg.SyncGroupResponse)
	if sr.ErrorCode != 0 || string(sr.MemberAssignment) != "mine" {
		t.Fatalf("resync: %v, assignment %q", kerr.ErrorForCode(sr.ErrorCode), sr.MemberAssignment)
	}
}
