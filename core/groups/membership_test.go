package groups

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const session = 5 * time.Second

func TestJoinThreeMembersLeaderAndSync(t *testing.T) {
	t.Parallel()
	c, _ := newTestCoordinator(t, testConfig())
	const group = "g3"
	ids := []string{memberID(t, c, group, session), memberID(t, c, group, session), memberID(t, c, group, session)}

	joins := make([]<-chan result, len(ids))
	for i, id := range ids {
		joins[i] = send(c, joinReq(group, id, 9, session, "cooperative-sticky", "range"))
		if i < len(ids)-1 {
			// Still waiting for the others to rejoin with their ids.
			pending(t, joins[i], "join before everyone joined")
		}
	}
	resps := make(map[string]*kmsg.JoinGroupResponse)
	for i, id := range ids {
		r := recv[*kmsg.JoinGroupResponse](t, joins[i])
		wantCode(t, "join", r.ErrorCode, nil)
		if r.MemberID != id {
			t.Fatalf("join answered member %q, want %q", r.MemberID, id)
		}
		resps[id] = r
	}
	leader := resps[ids[0]].LeaderID
	if _, ok := resps[leader]; !ok {
		t.Fatalf("leader %q is not a member", leader)
	}
	for id, r := range resps {
		if r.Generation != 1 || r.LeaderID != leader || r.Protocol == nil || *r.Protocol != "cooperative-sticky" {
			t.Fatalf("member %s: generation %d leader %q protocol %v", id, r.Generation, r.LeaderID, r.Protocol)
		}
		if r.ProtocolType == nil || *r.ProtocolType != "consumer" {
			t.Fatalf("member %s: protocol type %v", id, r.ProtocolType)
		}
		if id == leader {
			if len(r.Members) != 3 {
				t.Fatalf("leader got %d members, want 3", len(r.Members))
			}
			for _, m := range r.Members {
				if string(m.ProtocolMetadata) != "meta-cooperative-sticky" {
					t.Fatalf("member %s metadata %q", m.MemberID, m.ProtocolMetadata)
				}
			}
		} else if len(r.Members) != 0 {
			t.Fatalf("follower %s got %d members", id, len(r.Members))
		}
	}

	// Followers sync first and wait for the leader's assignment.
	syncs := make(map[string]<-chan result)
	for _, id := range ids {
		if id != leader {
			syncs[id] = send(c, syncReq(group, id, 1, nil))
			pending(t, syncs[id], "follower sync before leader")
		}
	}
	if got := describeGroup(t, c, group).State; got != "CompletingRebalance" {
		t.Fatalf("state %s while waiting for leader sync", got)
	}
	assign := map[string]string{}
	for _, id := range ids {
		assign[id] = "parts-of-" + id
	}
	syncs[leader] = send(c, syncReq(group, leader, 1, assign))
	for id, ch := range syncs {
		r := recv[*kmsg.SyncGroupResponse](t, ch)
		wantCode(t, "sync", r.ErrorCode, nil)
		if string(r.MemberAssignment) != "parts-of-"+id {
			t.Fatalf("member %s got assignment %q", id, r.MemberAssignment)
		}
		if r.Protocol == nil || *r.Protocol != "cooperative-sticky" {
			t.Fatalf("sync protocol %v", r.Protocol)
		}
	}
	d := describeGroup(t, c, group)
	if d.State != "Stable" || d.Protocol != "cooperative-sticky" || d.ProtocolType != "consumer" || len(d.Members) != 3 {
		t.Fatalf("describe: %+v", d)
	}
	for _, m := range d.Members {
		if string(m.MemberAssignment) != "parts-of-"+m.MemberID || m.ClientID != "test-client" || m.ClientHost != "127.0.0.1" {
			t.Fatalf("describe member %+v", m)
		}
	}
	for _, id := range ids {
		wantCode(t, "heartbeat when stable", heartbeat(t, c, group, id, 1), nil)
	}
}

func TestHeartbeatDuringRebalance(t *testing.T) {
	t.Parallel()
	c, _ := newTestCoordinator(t, testConfig())
	const group = "hb"
	ids, gen := stableGroup(t, c, group, 2, session)

	newcomer := memberID(t, c, group, session)
	newJoin := send(c, joinReq(group, newcomer, 9, session))
	pending(t, newJoin, "newcomer join")
	for _, id := range ids {
		wantCode(t, "heartbeat during rebalance", heartbeat(t, c, group, id, gen), kerr.RebalanceInProgress)
	}
	// Sync and commit with the old generation are refused or allowed as Kafka does.
	r := do[*kmsg.SyncGroupResponse](t, c, syncReq(group, ids[1], gen, nil))
	wantCode(t, "sync during rebalance", r.ErrorCode, kerr.RebalanceInProgress)
	wantCode(t, "commit during join phase", commit(t, c, group, ids[1], gen, "t", 0, 5), nil)

	rejoins := []<-chan result{newJoin}
	for _, id := range ids {
		rejoins = append(rejoins, send(c, joinReq(group, id, 9, session)))
	}
	for _, ch := range rejoins {
		jr := recv[*kmsg.JoinGroupResponse](t, ch)
		wantCode(t, "rejoin", jr.ErrorCode, nil)
		if jr.Generation != gen+1 {
			t.Fatalf("generation %d after rebalance, want %d", jr.Generation, gen+1)
		}
		if jr.LeaderID != ids[0] {
			t.Fatalf("leader changed from %s to %s", ids[0], jr.LeaderID)
		}
	}
	wantCode(t, "heartbeat old generation", heartbeat(t, c, group, ids[0], gen), kerr.IllegalGeneration)
	// Between join and sync heartbeats are fine.
	wantCode(t, "heartbeat new generation", heartbeat(t, c, group, ids[0], gen+1), nil)
}

func TestSessionExpiryTriggersRebalance(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	c, _ := newTestCoordinator(t, cfg)
	const group = "expiry"
	const short = time.Second // long enough for a loaded -race run to heartbeat in time
	ids, gen := stableGroup(t, c, group, 2, short)
	alive, silent := ids[0], ids[1]

	deadline := time.Now().Add(waitLimit)
	for {
		code := heartbeat(t, c, group, alive, gen)
		if code == kerr.RebalanceInProgress.Code {
			break
		}
		wantCode(t, "heartbeat", code, nil)
		if time.Now().After(deadline) {
			t.Fatal("silent member never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantCode(t, "heartbeat of expired member", heartbeat(t, c, group, silent, gen), kerr.UnknownMemberID)
	jr := do[*kmsg.JoinGroupResponse](t, c, joinReq(group, alive, 9, short))
	wantCode(t, "rejoin", jr.ErrorCode, nil)
	if jr.Generation != gen+1 || jr.LeaderID != alive || len(jr.Members) != 1 {
		t.Fatalf("after expiry: generation %d leader %s members %d", jr.Generation, jr.LeaderID, len(jr.Members))
	}
	if got := gathered(t, reg)["tributary_core_group_session_expirations_total"]; got != 1 {
		t.Fatalf("session expirations metric %v, want 1", got)
	}
}

func TestLeaderExpiryElectsNewLeader(t *testing.T) {
	t.Parallel()
	c, _ := newTestCoordinator(t, testConfig())
	const group = "leader-expiry"
	const short = time.Second // long enough for a loaded -race run to heartbeat in time
	ids, gen := stableGroup(t, c, group, 2, short)
	leader, follower := ids[0], ids[1]
	eventually(t, "leader expired", func() bool {
		return heartbeat(t, c, group, follower, gen) == kerr.RebalanceInProgress.Code
	})
	jr := do[*kmsg.JoinGroupResponse](t, c, joinReq(group, follower, 9, short))
	wantCode(t, "rejoin", jr.ErrorCode, nil)
	if jr.LeaderID != follower || len(jr.Members) != 1 {
		t.Fatalf("leader %s (old %s), %d members", jr.LeaderID, leader, len(jr.Members))
	}
}

func TestLeaveTriggersRebalance(t *testing.T) {
	t.Parallel()
	for _, version := range []int16{0, 3, 5} {
		t.Run("v"+string(rune('0'+version)), func(t *testing.T) {
			c, _ := newTestCoordinator(t, testConfig())
			const group = "leave"
			ids, gen := stableGroup(t, c, group, 2, session)

			lr := kmsg.NewPtrLeaveGroupRequest()
			lr.SetVersion(version)
			lr.Group = group
			if version < 3 {
				lr.MemberID = ids[1]
			} else {
				m := kmsg.NewLeaveGroupRequestMember()
				m.MemberID = ids[1]
				unknown := kmsg.NewLeaveGroupRequestMember()
				unknown.MemberID = "nobody"
				lr.Members = append(lr.Members, m, unknown)
			}
			resp := do[*kmsg.LeaveGroupResponse](t, c, lr)
			wantCode(t, "leave", resp.ErrorCode, nil)
			if version >= 3 {
				if len(resp.Members) != 2 {
					t.Fatalf("leave answered %d members", len(resp.Members))
				}
				wantCode(t, "leaving member", resp.Members[0].ErrorCode, nil)
				wantCode(t, "unknown member", resp.Members[1].ErrorCode, kerr.UnknownMemberID)
			}
			wantCode(t, "heartbeat after leave", heartbeat(t, c, group, ids[0], gen), kerr.RebalanceInProgress)
			jr := do[*kmsg.JoinGroupResponse](t, c, joinReq(group, ids[0], 9, session))
			if jr.Generation != gen+1 || len(jr.Members) != 1 {
				t.Fatalf("after leave: generation %d, %d members", jr.Generation, len(jr.Members))
			}

			// The last member leaving empties the group.
			lr = kmsg.NewPtrLeaveGroupRequest()
			lr.SetVersion(0)
			lr.Group = group
			lr.MemberID = ids[0]
			wantCode(t, "last leave", do[*kmsg.LeaveGroupResponse](t, c, lr).ErrorCode, nil)
			if d := describeGroup(t, c, group); d.State != "Empty" && d.State != "Dead" {
				t.Fatalf("state %s after everyone left", d.State)
			}
			wantCode(t, "leave again", do[*kmsg.LeaveGroupResponse](t, c, lr).ErrorCode, kerr.UnknownMemberID)
		})
	}
}

func TestIllegalGenerationAndUnknownMember(t *testing.T) {
	t.Parallel()
	c, _ := newTestCoordinator(t, testConfig())
	const group = "gen"
	ids, gen := stableGroup(t, c, group, 1, session)
	id := ids[0]

	wantCode(t, "heartbeat wrong generation", heartbeat(t, c, group, id, gen+7), kerr.IllegalGeneration)
	wantCode(t, "heartbeat unknown member", heartbeat(t, c, group, "ghost", gen), kerr.UnknownMemberID)
	wantCode(t, "heartbeat unknown group", heartbeat(t, c, "no-such-group", id, gen), kerr.UnknownMemberID)
	wantCode(t, "heartbeat empty group id", heartbeat(t, c, "", id, gen), kerr.InvalidGroupID)
	wantCode(t, "sync wrong generation",
		do[*kmsg.SyncGroupResponse](t, c, syncReq(group, id, gen-1, nil)).ErrorCode, kerr.IllegalGeneration)
	wantCode(t, "sync unknown member",
		do[*kmsg.SyncGroupResponse](t, c, syncReq(group, "ghost", gen, nil)).ErrorCode, kerr.UnknownMemberID)
	wantCode(t, "commit wrong generation", commit(t, c, group, id, gen+1, "t", 0, 1), kerr.IllegalGeneration)
	wantCode(t, "commit unknown member", commit(t, c, group, "ghost", gen, "t", 0, 1), kerr.UnknownMemberID)
	wantCode(t, "simple commit to active group", commit(t, c, group, "", -1, "t", 0, 1), kerr.UnknownMemberID)
	wantCode(t, "join unknown member", do[*kmsg.JoinGroupResponse](t, c, joinReq(group, "ghost", 9, session)).ErrorCode, kerr.UnknownMemberID)
	wantCode(t, "join unknown group with id", do[*kmsg.JoinGroupResponse](t, c, joinReq("fresh", "ghost", 9, session)).ErrorCode, kerr.UnknownMemberID)
	wantCode(t, "commit current generation", commit(t, c, group, id, gen, "t", 0, 1), nil)

	// Stable member rejoining with the same metadata gets its generation back.
	jr := do[*kmsg.JoinGroupResponse](t, c, joinReq(group, id, 9, session))
	wantCode(t, "leader rejoin", jr.ErrorCode, nil)
	if jr.Generation != gen+1 {
		t.Fatalf("leader rejoin from Stable should rebalance: generation %d", jr.Generation)
	}
}

func TestJoinValidation(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MinSessionTimeout = time.Second
	cfg.MaxSessionTimeout = time.Minute
	c, _ := newTestCoordinator(t, cfg)
	wantCode(t, "short session", do[*kmsg.JoinGroupResponse](t, c, joinReq("v", "", 9, 10*time.Millisecond)).ErrorCode, kerr.InvalidSessionTimeout)
	wantCode(t, "long session", do[*kmsg.JoinGroupResponse](t, c, joinReq("v", "", 9, time.Hour)).ErrorCode, kerr.InvalidSessionTimeout)
	wantCode(t, "empty group", do[*kmsg.JoinGroupResponse](t, c, joinReq("", "", 9, session)).ErrorCode, kerr.InvalidGroupID)
	noProto := joinReq("v", "", 9, session)
	noProto.Protocols = nil
	wantCode(t, "no protocols", do[*kmsg.JoinGroupResponse](t, c, noProto).ErrorCode, kerr.InconsistentGroupProtocol)

	ids, _ := stableGroup(t, c, "v", 1, session)
	other := joinReq("v", "", 3, session, "other")
	wantCode(t, "no common protocol", do[*kmsg.JoinGroupResponse](t, c, other).ErrorCode, kerr.InconsistentGroupProtocol)
	wrongType := joinReq("v", "", 3, session)
	wrongType.ProtocolType = "connect"
	wantCode(t, "other protocol type", do[*kmsg.JoinGroupResponse](t, c, wrongType).ErrorCode, kerr.InconsistentGroupProtocol)
	_ = ids
}

func TestProtocolSelectionAndOldVersions(t *testing.T) {
	t.Parallel()
	c, _ := newTestCoordinator(t, testConfig())
	const group = "proto"
	// v3 predates MEMBER_ID_REQUIRED: the first join makes the member.
	first := send(c, joinReq(group, "", 3, session, "range", "roundrobin"))
	r1 := recv[*kmsg.JoinGroupResponse](t, first)
	wantCode(t, "v3 join", r1.ErrorCode, nil)
	if r1.Version != 3 || r1.Generation != 1 || *r1.Protocol != "range" {
		t.Fatalf("v3 join: version %d generation %d protocol %v", r1.Version, r1.Generation, *r1.Protocol)
	}
	do[*kmsg.SyncGroupResponse](t, c, syncReq(group, r1.MemberID, 1, nil))

	// A second member that only speaks roundrobin forces roundrobin.
	second := send(c, joinReq(group, "", 0, session, "roundrobin"))
	pending(t, second, "second join")
	again := send(c, joinReq(group, r1.MemberID, 3, session, "range", "roundrobin"))
	ra := recv[*kmsg.JoinGroupResponse](t, again)
	r2 := recv[*kmsg.JoinGroupResponse](t, second)
	for _, r := range []*kmsg.JoinGroupResponse{ra, r2} {
		wantCode(t, "join", r.ErrorCode, nil)
		if *r.Protocol != "roundrobin" || r.Generation != 2 {
			t.Fatalf("protocol %v generation %d", *r.Protocol, r.Generation)
		}
	}
	if r2.Version != 0 || ra.LeaderID != r1.MemberID || len(ra.Members) != 2 {
		t.Fatalf("v0 response version %d, leader %s, members %d", r2.Version, ra.LeaderID, len(ra.Members))
	}
}

func TestRebalanceTimeoutRemovesLaggards(t *testing.T) {
	t.Parallel()
	c, _ := newTestCoordinator(t, testConfig())
	const group = "laggard"
	// Long sessions, short rebalance timeout: only the rebalance timeout
	// can remove the member that does not rejoin.
	const rebalance = time.Second
	ids, gen := stableGroupRebalance(t, c, group, 2, session, rebalance)
	newcomer := memberID(t, c, group, session)
	req := joinReq(group, newcomer, 9, session)
	req.RebalanceTimeoutMillis = int32(rebalance / time.Millisecond)
	j := send(c, req)
	req = joinReq(group, ids[0], 9, session)
	req.RebalanceTimeoutMillis = int32(rebalance / time.Millisecond)
	rj := send(c, req)
	jr := recv[*kmsg.JoinGroupResponse](t, rj)
	wantCode(t, "join", jr.ErrorCode, nil)
	if jr.Generation != gen+1 || len(jr.Members) != 2 {
		t.Fatalf("generation %d with %d members, want %d with 2", jr.Generation, len(jr.Members), gen+1)
	}
	recv[*kmsg.JoinGroupResponse](t, j)
	wantCode(t, "laggard heartbeat", heartbeat(t, c, group, ids[1], gen), kerr.UnknownMemberID)
}

func TestLeaderNeverSyncs(t *testing.T) {
	t.Parallel()
	c, _ := newTestCoordinator(t, testConfig())
	const group = "nosync"
	const short = time.Second // long enough for a loaded -race run to heartbeat in time
	ids := []string{memberID(t, c, group, short), memberID(t, c, group, short)}
	a, b := send(c, joinReq(group, ids[0], 9, short)), send(c, joinReq(group, ids[1], 9, short))
	ra, rb := recv[*kmsg.JoinGroupResponse](t, a), recv[*kmsg.JoinGroupResponse](t, b)
	follower := ids[0]
	if ra.LeaderID == ids[0] {
		follower = ids[1]
	}
	_ = rb
	// The follower waits for an assignment the leader never sends; the
	// pending-sync timeout removes the leader and restarts the rebalance.
	s := send(c, syncReq(group, follower, ra.Generation, nil))
	r := recv[*kmsg.SyncGroupResponse](t, s)
	wantCode(t, "follower sync", r.ErrorCode, kerr.RebalanceInProgress)
	jr := do[*kmsg.JoinGroupResponse](t, c, joinReq(group, follower, 9, short))
	if jr.LeaderID != follower || len(jr.Members) != 1 {
		t.Fatalf("leader %s, %d members", jr.LeaderID, len(jr.Members))
	}
}

func TestStaticMembership(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	// Static members skip the MEMBER_ID_REQUIRED round, so the initial
	// delay is what gathers both into the first generation.
	cfg.InitialRebalanceDelay = 500 * time.Millisecond
	c, _ := newTestCoordinator(t, cfg)
	const group = "static"
	instA, instB := "sensor-a", "sensor-b"
	join := func(memberID, instance string, version int16) <-chan result {
		r := joinReq(group, memberID, version, session)
		r.InstanceID = &instance
		return send(c, r)
	}
	// Static members join without the MEMBER_ID_REQUIRED round.
	ja, jb := join("", instA, 9), join("", instB, 9)
	ra, rb := recv[*kmsg.JoinGroupResponse](t, ja), recv[*kmsg.JoinGroupResponse](t, jb)
	wantCode(t, "static join a", ra.ErrorCode, nil)
	wantCode(t, "static join b", rb.ErrorCode, nil)
	gen := ra.Generation
	if ra.LeaderID != rb.LeaderID || gen != rb.Generation {
		t.Fatalf("static joins disagree: %+v %+v", ra, rb)
	}
	leader, follower, followerInst := ra.MemberID, rb.MemberID, instB
	if ra.LeaderID != ra.MemberID {
		leader, follower, followerInst = rb.MemberID, ra.MemberID, instA
	}
	s1 := send(c, syncReq(group, follower, gen, nil))
	s2 := send(c, syncReq(group, leader, gen, map[string]string{leader: "L", follower: "F"}))
	recv[*kmsg.SyncGroupResponse](t, s1)
	recv[*kmsg.SyncGroupResponse](t, s2)

	// The follower restarts: same instance id, no member id. It gets a
	// new member id and its old assignment, without a rebalance.
	rr := recv[*kmsg.JoinGroupResponse](t, join("", followerInst, 9))
	wantCode(t, "static rejoin", rr.ErrorCode, nil)
	if rr.Generation != gen || rr.MemberID == follower || rr.LeaderID != leader {
		t.Fatalf("static rejoin: generation %d (was %d), member %s (was %s), leader %s", rr.Generation, gen, rr.MemberID, follower, rr.LeaderID)
	}
	sr := do[*kmsg.SyncGroupResponse](t, c, syncReq(group, rr.MemberID, gen, nil))
	if string(sr.MemberAssignment) != "F" {
		t.Fatalf("static member got assignment %q after restart", sr.MemberAssignment)
	}
	wantCode(t, "leader heartbeat", heartbeat(t, c, group, leader, gen), nil)

	// The old incarnation is fenced.
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(4)
	hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = group, follower, gen, &followerInst
	wantCode(t, "old incarnation heartbeat", do[*kmsg.HeartbeatResponse](t, c, hb).ErrorCode, kerr.FencedInstanceID)
	old := joinReq(group, follower, 9, session)
	old.InstanceID = &followerInst
	wantCode(t, "old incarnation join", do[*kmsg.JoinGroupResponse](t, c, old).ErrorCode, kerr.FencedInstanceID)

	// Static leave by instance id (what admin tools send).
	lr := kmsg.NewPtrLeaveGroupRequest()
	lr.SetVersion(5)
	lr.Group = group
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.InstanceID = &followerInst
	lr.Members = []kmsg.LeaveGroupRequestMember{lm}
	resp := do[*kmsg.LeaveGroupResponse](t, c, lr)
	wantCode(t, "static leave", resp.Members[0].ErrorCode, nil)
	wantCode(t, "leader heartbeat after leave", heartbeat(t, c, group, leader, gen), kerr.RebalanceInProgress)
}

func TestInitialRebalanceDelay(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.InitialRebalanceDelay = time.Second
	c, _ := newTestCoordinator(t, cfg)
	const group = "delay"
	// Old-version joins so that no MEMBER_ID_REQUIRED round is involved:
	// without the delay the first would complete a generation alone.
	a := send(c, joinReq(group, "", 3, session))
	pending(t, a, "first join during initial delay")
	b := send(c, joinReq(group, "", 3, session))
	ra, rb := recv[*kmsg.JoinGroupResponse](t, a), recv[*kmsg.JoinGroupResponse](t, b)
	if ra.Generation != 1 || rb.Generation != 1 {
		t.Fatalf("generations %d and %d, want both 1", ra.Generation, rb.Generation)
	}
	leaderResp := ra
	if rb.LeaderID == rb.MemberID {
		leaderResp = rb
	}
	if len(leaderResp.Members) != 2 {
		t.Fatalf("leader saw %d members", len(leaderResp.Members))
	}
}

func TestCancelAndClose(t *testing.T) {
	t.Parallel()
	c, _ := newTestCoordinator(t, testConfig())
	const group = "cancel"
	ids, _ := stableGroup(t, c, group, 1, session)
	id2 := memberID(t, c, group, session)

	// A join whose client goes away returns the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Handle(ctx, joinReq(group, id2, 9, session))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled join: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("cancelled join did not return")
	}

	// Close answers blocked joins so clients look for a new coordinator.
	blocked := send(c, joinReq(group, id2, 9, session))
	pending(t, blocked, "join waiting for the leader")
	c.Close()
	r := recv[*kmsg.JoinGroupResponse](t, blocked)
	wantCode(t, "join at close", r.ErrorCode, kerr.CoordinatorNotAvailable)
	wantCode(t, "heartbeat after close", heartbeat(t, c, group, ids[0], 1), kerr.CoordinatorNotAvailable)
}

func TestHandleRejectsUnsupported(t *testing.T) {
	t.Parallel()
	c, _ := newTestCoordinator(t, testConfig())
	if _, err := c.Handle(context.Background(), kmsg.NewPtrProduceRequest()); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("produce: %v", err)
	}
	r := kmsg.NewPtrOffsetCommitRequest()
	r.SetVersion(10)
	if _, err := c.Handle(context.Background(), r); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("offset commit v10: %v", err)
	}
	v := c.Versions()
	for _, key := range []int16{8, 9, 11, 12, 13, 14, 15, 16, 42, 47} {
		vr, ok := v[key]
		if !ok || vr[0] > vr[1] {
			t.Fatalf("key %d: versions %v", key, vr)
		}
		req := kmsg.RequestForKey(key)
		if vr[1] > req.MaxVersion() {
			t.Fatalf("key %d: max %d beyond kmsg's %d", key, vr[1], req.MaxVersion())
		}
	}
}

func TestGroupMaxSize(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxGroupSize = 2
	c, _ := newTestCoordinator(t, cfg)
	memberID(t, c, "small", session)
	memberID(t, c, "small", session)
	r := do[*kmsg.JoinGroupResponse](t, c, joinReq("small", "", 9, session))
	wantCode(t, "third member", r.ErrorCode, kerr.GroupMaxSizeReached)
	r = do[*kmsg.JoinGroupResponse](t, c, joinReq("other", "", 9, session))
	wantCode(t, "other group", r.ErrorCode, kerr.MemberIDRequired)
}
