package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tributary-io/tributary/internal/forwarded"
	"github.com/tributary-io/tributary/internal/tick"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// fetcher is a follower's replication loop for one partition: it truncates
// its log by leader epoch (OffsetForLeaderEpoch), then fetches from the
// leader with the Kafka Fetch API (ReplicaID = this broker), appends what it
// gets with the leader's offsets and epochs, and fsyncs before fetching on,
// so the fetch offset the leader sees is what this broker has on disk.
type fetcher struct {
	r      *replica
	leader int32
	addr   string
	epoch  int32

	conn *replConn
}

const (
	fetchBackoff       = 100 * time.Millisecond
	replicaFetchBytes  = 8 << 20
	replicaDialTimeout = 2 * time.Second
)

func (f *fetcher) run(ctx context.Context) {
	log := f.r.m.s.logger.With("topic", f.r.topic, "partition", f.r.part, "leader", f.leader, "epoch", f.epoch)
	defer f.close()
	truncated := false
	fails := 0
	for ctx.Err() == nil {
		err := f.step(ctx, &truncated)
		if err == nil {
			fails = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		fails++
		f.r.m.fetchErrors.Inc()
		if fails == 1 || fails%50 == 0 {
			log.Debug("replica fetch failed", "err", err, "failures", fails)
		}
		f.close()
		if !tick.Sleep(ctx, fetchBackoff) {
			return
		}
	}
}

func (f *fetcher) close() {
	if f.conn != nil {
		f.conn.close()
		f.conn = nil
	}
}

// step runs one truncation or fetch round.
func (f *fetcher) step(ctx context.Context, truncated *bool) error {
	if f.conn == nil {
		c, err := dialReplica(ctx, f.r.m.s, f.leader, f.addr)
		if err != nil {
			return err
		}
		f.conn = c
	}
	l := f.r.log
	if !*truncated {
		done, err := f.truncate(ctx)
		if err != nil {
			return err
		}
		if !done {
			return nil // cut back to an older epoch: ask again from there
		}
		*truncated = true
	}
	if err := f.replaceDamage(); err != nil {
		return err
	}
	// The fetch offset tells the leader what this broker has on disk: after
	// a failed fsync, sync the tail again before reporting it.
	if l.SyncedOffset() < l.NextOffset() {
		if err := l.WaitSynced(ctx, l.NextOffset()); err != nil {
			return fmt.Errorf("sync before fetching: %w", err)
		}
	}
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.ReplicaID = f.r.self
	req.MaxWaitMillis = int32(f.r.m.s.cfg.Replication.FetchMaxWait.Milliseconds())
	req.MinBytes = 1
	req.MaxBytes = replicaFetchBytes
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = f.r.topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = f.r.part
	rp.CurrentLeaderEpoch = f.epoch
	rp.FetchOffset = l.NextOffset()
	// The leader checks that our last epoch ends where it does in its log
	// before it counts the fetch (KIP-595's DivergingEpoch).
	rp.LastFetchedEpoch = l.LatestEpoch()
	rp.LogStartOffset = l.StartOffset()
	rp.PartitionMaxBytes = replicaFetchBytes
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := kmsg.NewPtrFetchResponse()
	if err := f.conn.do(ctx, req, resp, f.r.m.s.cfg.Replication.FetchMaxWait+10*time.Second); err != nil {
		return err
	}
	if resp.ErrorCode != 0 {
		return fmt.Errorf("fetch: %w", kerr.ErrorForCode(resp.ErrorCode))
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return errors.New("fetch: response does not name the partition")
	}
	sp := resp.Topics[0].Partitions[0]
	switch sp.ErrorCode {
	case 0:
	case kerr.OffsetOutOfRange.Code:
		if rp.FetchOffset < sp.LogStartOffset {
			// The leader no longer holds what we would fetch next.
			if err := l.ResetTo(sp.LogStartOffset); err != nil {
				return fmt.Errorf("reset to leader start %d: %w", sp.LogStartOffset, err)
			}
			return nil
		}
		*truncated = false
		return fmt.Errorf("fetch at %d: %w", rp.FetchOffset, kerr.OffsetOutOfRange)
	default:
		return fmt.Errorf("fetch at %d: %w", rp.FetchOffset, kerr.ErrorForCode(sp.ErrorCode))
	}
	if d := sp.DivergingEpoch; d.Epoch >= 0 || d.EndOffset >= 0 {
		// Our log parts from the leader's before our fetch offset.
		done, err := f.truncateAt(rp.LastFetchedEpoch, d.Epoch, d.EndOffset)
		if err != nil {
			return err
		}
		*truncated = done
		return nil
	}
	if len(sp.RecordBatches) > 0 {
		err := f.r.appendAsFollower(ctx, f.epoch, sp.RecordBatches)
		if err != nil {
			*truncated = false
			return fmt.Errorf("append fetched batches at %d: %w", rp.FetchOffset, err)
		}
		// Fsync before the next fetch reports the new end to the leader.
		if err := l.WaitSynced(ctx, l.NextOffset()); err != nil {
			return fmt.Errorf("sync fetched batches: %w", err)
		}
	}
	f.r.followerHW(min(sp.HighWatermark, l.NextOffset()))
	if sp.LogStartOffset > l.StartOffset() {
		// DeleteRecords on the leader: the replicas follow its start.
		if _, err := l.DeleteRecordsBefore(min(sp.LogStartOffset, l.NextOffset())); err != nil {
			return fmt.Errorf("follow leader start %d: %w", sp.LogStartOffset, err)
		}
	}
	return nil
}

// replaceDamage makes a follower whose copy has a damaged range (found by a
// read or the scrubber) drop its log from there and fetch it again from the
// leader, as Kafka re-replicates a truncated replica: the damage then leaves
// the log, and /healthz with it.
func (f *fetcher) replaceDamage() error {
	l := f.r.log
	dmg := l.Damage()
	if len(dmg) == 0 {
		return nil
	}
	from := dmg[0].From
	for _, d := range dmg[1:] {
		from = min(from, d.From)
	}
	from = max(from, l.StartOffset())
	f.r.m.s.logger.Warn("replacing a damaged replica range with the leader's copy", "topic", f.r.topic, "partition", f.r.part,
		"from", from, "log_end", l.NextOffset(), "segment", dmg[0].Segment, "position", dmg[0].Position)
	if err := l.TruncateTo(from); err != nil {
		return fmt.Errorf("truncate damaged replica to %d: %w", from, err)
	}
	f.r.m.truncations.Inc()
	return nil
}

// truncate cuts a divergent tail: the leader says where our latest epoch
// ends in its log, and everything from there on is not the leader's; and
// nothing of ours may lie past the leader's log end. It reports false when
// it cut back to an older epoch the leader must be asked about next.
func (f *fetcher) truncate(ctx context.Context) (bool, error) {
	l := f.r.log
	latest := l.LatestEpoch()
	if latest > f.epoch {
		// Our log holds records of a newer leader epoch than the leader we
		// are told to follow, so our metadata is behind (after a restart
		// the Raft log is applied entry by entry, and the replica manager
		// can see an old leader go by). That leader would answer "no such
		// epoch" and we would truncate records a later epoch committed;
		// retry until the metadata catches up instead.
		return false, fmt.Errorf("%w: log has epoch %d, told to follow epoch %d", errStaleLeaderEpoch, latest, f.epoch)
	}
	if latest >= 0 {
		leaderEpoch, leaderEnd, err := f.endOffsetForEpoch(ctx, latest)
		if err != nil {
			return false, err
		}
		if done, err := f.truncateAt(latest, leaderEpoch, leaderEnd); err != nil || !done {
			return done, err
		}
	}
	// Records without epochs, or an unclean election's leader holding less
	// than we do: never keep more than the leader's log end (the end of
	// its current epoch).
	_, leaderLogEnd, err := f.endOffsetForEpoch(ctx, f.epoch)
	if err != nil {
		return false, err
	}
	if leaderLogEnd >= 0 && leaderLogEnd < l.NextOffset() {
		if err := f.cut(leaderLogEnd, latest, f.epoch); err != nil {
			return false, err
		}
	}
	return true, nil
}

// truncateAt cuts our log where it parts from the leader's, given the
// leader's latest epoch at or below ours and where that epoch ends in its
// log (from OffsetForLeaderEpoch, or a Fetch's DivergingEpoch). It reports
// false when it cut back to an older epoch the leader must be asked about.
func (f *fetcher) truncateAt(latest, leaderEpoch int32, leaderEnd int64) (bool, error) {
	l := f.r.log
	to, done := divergence(l, leaderEpoch, leaderEnd)
	if mustCut(l, to) {
		if err := f.cut(to, latest, leaderEpoch); err != nil {
			return false, err
		}
	}
	return done, nil
}

// mustCut reports whether a divergence at to leaves l anything to cut: the
// records from to on, or, at or below its start, the epochs an empty log
// still knows from below it (they would fail the next fetch's check).
func mustCut(l *storage.Log, to int64) bool {
	return to < l.NextOffset() || (to <= l.StartOffset() && l.LatestEpoch() >= 0)
}

// cutLog truncates l to offset to; at or below its start it empties the log
// there (the start may sit inside a batch, which truncating would keep).
func cutLog(l *storage.Log, to int64) error {
	if to <= l.StartOffset() {
		return l.ResetTo(to)
	}
	return l.TruncateTo(to)
}

// cut truncates our log to offset (cutLog), logging and counting it.
func (f *fetcher) cut(to int64, ours, leaderEpoch int32) error {
	l := f.r.log
	f.r.m.s.logger.Info("truncating divergent replica tail", "topic", f.r.topic, "partition", f.r.part,
		"from", l.NextOffset(), "to", to, "our_epoch", ours, "leader_epoch", leaderEpoch)
	if err := cutLog(l, to); err != nil {
		return fmt.Errorf("truncate to %d: %w", to, err)
	}
	f.r.m.truncations.Inc()
	return nil
}

// endOffsetForEpoch asks the leader (OffsetForLeaderEpoch) for its latest
// epoch at or below epoch and where that epoch ends in its log; for the
// leader's current epoch, that is its log end.
func (f *fetcher) endOffsetForEpoch(ctx context.Context, epoch int32) (int32, int64, error) {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version = 3
	req.ReplicaID = f.r.self
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = f.r.topic
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.Partition = f.r.part
	rp.CurrentLeaderEpoch = f.epoch
	rp.LeaderEpoch = epoch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
	if err := f.conn.do(ctx, req, resp, 10*time.Second); err != nil {
		return 0, 0, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return 0, 0, errors.New("offset for leader epoch: response does not name the partition")
	}
	sp := resp.Topics[0].Partitions[0]
	if sp.ErrorCode != 0 {
		return 0, 0, fmt.Errorf("offset for leader epoch: %w", kerr.ErrorForCode(sp.ErrorCode))
	}
	return sp.LeaderEpoch, sp.EndOffset, nil
}

// divergence is where a follower's log l stops matching the leader's, from
// the leader's answer to OffsetForLeaderEpoch for l's latest epoch: the
// leader's latest epoch at or below it (leaderEpoch) and where that epoch
// ends in the leader's log (leaderEnd). As Kafka's follower does (KIP-101,
// KIP-279):
//
//   - We have leaderEpoch too: we match up to the earlier of the two ends
//     of it (it is our latest epoch, or we ran on into epochs the leader
//     never had).
//   - We never had leaderEpoch: we match at most up to where our latest
//     epoch before it ends. Cut there, and ask again (done is false).
//   - The leader knows no epoch at all, or we know none at or below
//     leaderEpoch: none of our records is known to be the leader's (an
//     unclean election chose a replica without them). We start again from
//     our start; kept, they would fail every fetch's epoch check. (An
//     epoch older than every one a log knows ends where its first known
//     one starts: storage.Log.EndOffsetForEpoch.)
func divergence(l *storage.Log, leaderEpoch int32, leaderEnd int64) (to int64, done bool) {
	if leaderEpoch < 0 || leaderEnd < 0 {
		return l.StartOffset(), true
	}
	ep, ours := l.EndOffsetForEpoch(leaderEpoch)
	switch {
	case ep < 0:
		return l.StartOffset(), true
	case ep != leaderEpoch:
		return ours, false
	default:
		return min(ours, leaderEnd), true
	}
}

// errStaleLeaderEpoch: the leader a follower is told to follow is older
// than records already in its log.
var errStaleLeaderEpoch = errors.New("replica: leader epoch older than the local log")

// replConn is a minimal Kafka client connection for replica traffic: one
// request at a time, versions fixed by the caller.
type replConn struct {
	c    net.Conn
	corr int32
	fmt  *kmsg.RequestFormatter
	buf  []byte
}

// dialReplica connects to a leader's Kafka listener, through the test fault
// injector when one is configured so that isolating a broker cuts
// replication too.
func dialReplica(ctx context.Context, s *Server, peer int32, addr string) (*replConn, error) {
	dctx, cancel := context.WithTimeout(ctx, replicaDialTimeout)
	defer cancel()
	var c net.Conn
	var err error
	if s.cfg.Cluster != nil && s.cfg.Cluster.Faults != nil {
		c, err = s.cfg.Cluster.Faults.Dial(dctx, s.cfg.NodeID, peer, addr)
	} else {
		var d net.Dialer
		c, err = d.DialContext(dctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial leader %d at %s: %w", peer, addr, err)
	}
	if c, err = s.dialInterBroker(dctx, c, addr); err != nil {
		return nil, err
	}
	rc := &replConn{c: c, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID(fmt.Sprintf("tributary-replica-%d", s.cfg.NodeID)))}
	if s.cfg.listeners()[0].sasl() {
		if err := rc.login(dctx, s); err != nil {
			rc.close()
			return nil, fmt.Errorf("leader %d at %s: %w", peer, addr, err)
		}
	}
	return rc, nil
}

// login authenticates a replica connection as the inter-broker user with
// SCRAM-SHA-512 (franz-go's client side of the exchange).
func (c *replConn) login(ctx context.Context, s *Server) error {
	pw, err := s.interBrokerPassword()
	if err != nil {
		return err
	}
	mech := scram.Auth{User: s.cfg.Security.InterBrokerUser, Pass: pw}.AsSha512Mechanism()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, mech.Name()
	hsResp := kmsg.NewPtrSASLHandshakeResponse()
	if err := c.do(ctx, hs, hsResp, replicaDialTimeout); err != nil {
		return fmt.Errorf("inter-broker SASL handshake: %w", err)
	}
	if hsResp.ErrorCode != 0 {
		return fmt.Errorf("inter-broker SASL handshake: error %d", hsResp.ErrorCode)
	}
	sess, tok, err := mech.Authenticate(ctx, "")
	if err != nil {
		return fmt.Errorf("inter-broker SASL: %w", err)
	}
	for range 4 {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version, req.SASLAuthBytes = 1, tok
		resp := kmsg.NewPtrSASLAuthenticateResponse()
		if err := c.do(ctx, req, resp, replicaDialTimeout); err != nil {
			return fmt.Errorf("inter-broker SASL authenticate: %w", err)
		}
		if resp.ErrorCode != 0 {
			return fmt.Errorf("inter-broker SASL authenticate: error %d", resp.ErrorCode)
		}
		done, next, err := sess.Challenge(resp.SASLAuthBytes)
		if err != nil {
			return fmt.Errorf("inter-broker SASL: %w", err)
		}
		if done {
			return nil
		}
		tok = next
	}
	return fmt.Errorf("inter-broker SASL: exchange did not finish")
}

func (c *replConn) close() { _ = c.c.Close() }

// do sends req and reads its response into resp within timeout; ctx ending
// closes the connection to unblock it.
func (c *replConn) do(ctx context.Context, req kmsg.Request, resp kmsg.Response, timeout time.Duration) error {
	stop := context.AfterFunc(ctx, func() { _ = c.c.SetDeadline(time.Now()) })
	defer stop()
	if err := c.c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	c.corr++
	c.buf = c.fmt.AppendRequest(c.buf[:0], req, c.corr)
	if _, err := c.c.Write(c.buf); err != nil {
		return fmt.Errorf("send %s: %w", kmsg.NameForKey(req.Key()), err)
	}
	var size [4]byte
	if _, err := io.ReadFull(c.c, size[:]); err != nil {
		return fmt.Errorf("read %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 64<<20 {
		return fmt.Errorf("read %s response: bad frame size %d", kmsg.NameForKey(req.Key()), n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.c, body); err != nil {
		return fmt.Errorf("read %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != c.corr {
		return fmt.Errorf("read %s response: correlation id %d, want %d", kmsg.NameForKey(req.Key()), corr, c.corr)
	}
	body = body[4:]
	if req.IsFlexible() {
		// Response header v1: tagged fields, none of which we use.
		ntags, k := binary.Uvarint(body)
		if k <= 0 || ntags != 0 {
			return fmt.Errorf("read %s response: unexpected header tags", kmsg.NameForKey(req.Key()))
		}
		body = body[k:]
	}
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(body); err != nil {
		return fmt.Errorf("decode %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return nil
}

// appendFetched appends a leader's batches to this follower's log. After a
// reset to a leader start that DeleteRecords put inside a batch, the log is
// empty at that start while the leader serves the whole batch holding it:
// the log then restarts at the batch's base (as Kafka's follower does on an
// unexpected append offset), and the leader's start is applied after the
// append (see step).
func appendFetched(ctx context.Context, l *storage.Log, batches []byte) error {
	if h, err := recordbatch.ParseHeader(batches); err == nil && h.BaseOffset < l.NextOffset() && l.StartOffset() == l.NextOffset() {
		if err := l.ResetTo(h.BaseOffset); err != nil {
			return fmt.Errorf("restart empty log at fetched batch %d: %w", h.BaseOffset, err)
		}
	}
	// The fetcher syncs before it fetches on (WaitSynced), whatever the
	// topic's flush policy.
	_, err := l.Append(ctx, batches, storage.AppendOptions{KeepOffsets: true, LeaderEpoch: -1, Sequences: forwarded.Sequences,
		DeferSync: true})
	return err
}

// errFollowingEnded refuses a fetched batch that arrives after this broker
// stopped following the leader epoch it was fetched in.
var errFollowingEnded = errors.New("replica: no longer following that leader epoch")

// appendAsFollower writes batches fetched from the leader of epoch while
// this broker still follows at that epoch, under leadMu: a fetcher's last
// batch cannot land after this broker has become leader (and counted its
// log end as the start of its epoch).
func (r *replica) appendAsFollower(ctx context.Context, epoch int32, batches []byte) error {
	r.leadMu.RLock()
	defer r.leadMu.RUnlock()
	if st := r.state(); st.LeaderEpoch != epoch || st.Leader == r.self {
		return fmt.Errorf("epoch %d: %w", epoch, errFollowingEnded)
	}
	return appendFetched(ctx, r.log, batches)
}
