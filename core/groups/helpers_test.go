package groups

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage/meta"
)

// waitLimit bounds every blocking step of a test.
const waitLimit = 10 * time.Second

// testConfig has timeouts short enough for tests and no initial delay,
// so that a join phase completes as soon as every member has joined.
func testConfig() Config {
	return Config{
		MinSessionTimeout:     10 * time.Millisecond,
		InitialRebalanceDelay: -1,
		TickInterval:          10 * time.Millisecond,
	}
}

func openStore(t testing.TB, path string) *meta.Store {
	t.Helper()
	s, err := meta.Open(path)
	if err != nil {
		t.Fatalf("open meta store: %v", err)
	}
	return s
}

// newTestCoordinator starts a coordinator over a fresh metadata file.
func newTestCoordinator(t testing.TB, cfg Config) (*Coordinator, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	store := openStore(t, path)
	c := NewCoordinator(store, cfg, testkit.Logger(t))
	t.Cleanup(func() {
		c.Close()
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return c, path
}

type result struct {
	resp kmsg.Response
	err  error
}

// send runs req in its own goroutine; the result arrives on the channel.
func send(c *Coordinator, req kmsg.Request) <-chan result {
	ch := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		resp, err := c.Handle(WithClient(ctx, "test-client", "127.0.0.1"), req)
		ch <- result{resp, err}
	}()
	return ch
}

// recv waits for an asynchronous result and checks it.
func recv[T kmsg.Response](t *testing.T, ch <-chan result) T {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("handle: %v", r.err)
		}
		return r.resp.(T)
	case <-time.After(waitLimit):
		t.Fatalf("no response within %v", waitLimit)
	}
	panic("unreachable")
}

// pending asserts that nothing arrived yet on ch: the request is blocked.
func pending(t *testing.T, ch <-chan result, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: expected to block, got %+v (err %v)", what, r.resp, r.err)
	case <-time.After(50 * time.Millisecond):
	}
}

// do sends req and waits for its response, checking the version matches.
func do[T kmsg.Response](t *testing.T, c *Coordinator, req kmsg.Request) T {
	t.Helper()
	resp := recv[T](t, send(c, req))
	if resp.GetVersion() != req.GetVersion() {
		t.Fatalf("response version %d for request version %d", resp.GetVersion(), req.GetVersion())
	}
	return resp
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	var wantCode int16
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Fatalf("%s: error %v, want %v", what, kerr.ErrorForCode(got), want)
	}
}

func protocols(names ...string) []kmsg.JoinGroupRequestProtocol {
	var ps []kmsg.JoinGroupRequestProtocol
	for _, n := range names {
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = n
		p.Metadata = []byte("meta-" + n)
		ps = append(ps, p)
	}
	return ps
}

func joinReq(group, memberID string, version int16, session time.Duration, protos ...string) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.SetVersion(version)
	r.Group = group
	r.MemberID = memberID
	r.SessionTimeoutMillis = int32(session / time.Millisecond)
	r.RebalanceTimeoutMillis = int32(session / time.Millisecond)
	r.ProtocolType = "consumer"
	if len(protos) == 0 {
		protos = []string{"range"}
	}
	r.Protocols = protocols(protos...)
	return r
}

// memberID asks for a member id (KIP-394's first JoinGroup round).
func memberID(t *testing.T, c *Coordinator, group string, session time.Duration) string {
	t.Helper()
	r := do[*kmsg.JoinGroupResponse](t, c, joinReq(group, "", 9, session))
	wantCode(t, "first join", r.ErrorCode, kerr.MemberIDRequired)
	if r.MemberID == "" {
		t.Fatal("MEMBER_ID_REQUIRED without a member id")
	}
	return r.MemberID
}

func syncReq(group, memberID string, generation int32, assignments map[string]string) *kmsg.SyncGroupRequest {
	r := kmsg.NewPtrSyncGroupRequest()
	r.SetVersion(5)
	r.Group = group
	r.MemberID = memberID
	r.Generation = generation
	for id, a := range assignments {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID = id
		ga.MemberAssignment = []byte(a)
		r.GroupAssignment = append(r.GroupAssignment, ga)
	}
	return r
}

func heartbeat(t *testing.T, c *Coordinator, group, memberID string, generation int32) int16 {
	t.Helper()
	r := kmsg.NewPtrHeartbeatRequest()
	r.SetVersion(4)
	r.Group = group
	r.MemberID = memberID
	r.Generation = generation
	return do[*kmsg.HeartbeatResponse](t, c, r).ErrorCode
}

func describeGroup(t *testing.T, c *Coordinator, group string) kmsg.DescribeGroupsResponseGroup {
	t.Helper()
	r := kmsg.NewPtrDescribeGroupsRequest()
	r.SetVersion(5)
	r.Groups = []string{group}
	resp := do[*kmsg.DescribeGroupsResponse](t, c, r)
	if len(resp.Groups) != 1 {
		t.Fatalf("describe returned %d groups", len(resp.Groups))
	}
	return resp.Groups[0]
}

// stableGroup brings n members into one Stable generation and returns
// their member ids (leader first) and the generation.
func stableGroup(t *testing.T, c *Coordinator, group string, n int, session time.Duration) ([]string, int32) {
	t.Helper()
	return stableGroupRebalance(t, c, group, n, session, session)
}

// stableGroupRebalance is stableGroup with members' rebalance timeout set
// apart from their session timeout.
func stableGroupRebalance(t *testing.T, c *Coordinator, group string, n int, session, rebalance time.Duration) ([]string, int32) {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = memberID(t, c, group, session)
	}
	chans := make([]<-chan result, n)
	for i, id := range ids {
		req := joinReq(group, id, 9, session)
		req.RebalanceTimeoutMillis = int32(rebalance / time.Millisecond)
		chans[i] = send(c, req)
	}
	var leader string
	var gen int32
	for i := range chans {
		r := recv[*kmsg.JoinGroupResponse](t, chans[i])
		wantCode(t, "join", r.ErrorCode, nil)
		leader, gen = r.LeaderID, r.Generation
	}
	assign := make(map[string]string)
	for _, id := range ids {
		assign[id] = "assignment-" + id
	}
	syncs := make([]<-chan result, n)
	for i, id := range ids {
		var a map[string]string
		if id == leader {
			a = assign
		}
		syncs[i] = send(c, syncReq(group, id, gen, a))
	}
	for i := range syncs {
		r := recv[*kmsg.SyncGroupResponse](t, syncs[i])
		wantCode(t, "sync", r.ErrorCode, nil)
	}
	out := []string{leader}
	for _, id := range ids {
		if id != leader {
			out = append(out, id)
		}
	}
	return out, gen
}

// eventually polls cond until it holds or waitLimit passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, waitLimit, what, cond)
}
