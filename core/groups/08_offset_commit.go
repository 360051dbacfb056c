package groups

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage/meta"
)

// maxMetadataSize is Kafka's offset.metadata.max.bytes default.
const maxMetadataSize = 4096

func (c *Coordinator) offsetCommit(req *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	codes := make([][]int16, len(req.Topics))
	for i, t := range req.Topics {
		codes[i] = make([]int16, len(t.Partitions))
	}
	defer answerCommit(req, resp, func(i, j int) int16 { return codes[i][j] })
	setAll := func(code int16) kmsg.Response {
		for i := range codes {
			for j := range codes[i] {
				codes[i][j] = code
			}
		}
		return resp
	}
	if req.Group == "" {
		return setAll(kerr.InvalidGroupID.Code)
	}
	if c.store == nil {
		return setAll(kerr.CoordinatorNotAvailable.Code)
	}
	// v0 predates group management: every v0 commit is a simple commit.
	generation, memberID := int32(-1), ""
	if req.Version >= 1 {
		generation, memberID = req.Generation, req.MemberID
	}
	var instanceID *string
	if req.Version >= 7 {
		instanceID = req.InstanceID
	}

	now := c.now()
	offsets := make(map[meta.TopicPartition]meta.OffsetCommit)
	for i, t := range req.Topics {
		for j, p := range t.Partitions {
			switch {
			case p.Metadata != nil && len(*p.Metadata) > maxMetadataSize:
				codes[i][j] = kerr.OffsetMetadataTooLarge.Code
			case t.Topic == "" || p.Partition < 0 ||
				(c.cfg.PartitionExists != nil && !c.cfg.PartitionExists(t.Topic, p.Partition)):
				codes[i][j] = kerr.UnknownTopicOrPartition.Code
			default:
				oc := meta.OffsetCommit{Offset: p.Offset, LeaderEpoch: -1, CommitMs: now.UnixMilli()}
				if req.Version >= 6 {
					oc.LeaderEpoch = p.LeaderEpoch
				}
				if p.Metadata != nil {
					oc.Metadata = *p.Metadata
				}
				offsets[meta.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = oc
			}
		}
	}

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.Lock()
	code := c.checkCommit(req.Group, generation, memberID, instanceID, len(offsets) > 0)
	c.mu.Unlock()
	if code != 0 {
		for i := range codes {
			for j := range codes[i] {
				if codes[i][j] == 0 {
					codes[i][j] = code
				}
			}
		}
		return resp
	}
	// The generation was checked before the write, not during it: like
	// Kafka, a rebalance that starts meanwhile does not undo the commit.
	if err := c.store.CommitOffsets(req.Group, offsets); err != nil {
		c.log.Error("committing offsets", "group", req.Group, "err", err)
		c.metrics.commitErrors.Inc()
		for i, t := range req.Topics {
			for j, p := range t.Partitions {
				if _, ok := offsets[meta.TopicPartition{Topic: t.Topic, Partition: p.Partition}]; ok && codes[i][j] == 0 {
					codes[i][j] = kerr.UnknownServerError.Code
				}
			}
		}
		return resp
	}
	c.metrics.commits.Add(float64(len(offsets)))
	return resp
}

// answerCommit fills resp with every partition req names, partition j of
// topic i with the error code code(i, j) (0: committed).
func answerCommit(req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, code func(i, j int) int16) {
	for i, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for j, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = code(i, j)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
}

// checkCommit applies Kafka's rules for who may commit: anyone with
// generation -1 while the group has no members (simple consumers, admin
// tools), otherwise a current member of the current generation. It
// creates the group for a first simple commit and refreshes a member's
// session, since committing shows it is alive.
func (c *Coordinator) checkCommit(name string, generation int32, memberID string, instanceID *string, writes bool) int16 {
	if c.closed {
		return kerr.CoordinatorNotAvailable.Code
	}
	g := c.groups[name]
	if g == nil {
		if generation >= 0 {
			return kerr.IllegalGeneration.Code
		}
		g = newGroup(name)
		c.groups[name] = g
	}
	switch {
	case g.fenced(instanceID, memberID):
		return kerr.FencedInstanceID.Code
	case generation < 0 && g.state == stateEmpty:
	case g.state == stateCompletingRebalance:
		return kerr.RebalanceInProgress.Code
	case g.members[memberID] == nil:
		return kerr.UnknownMemberID.Code
	case generation != g.generation:
		return kerr.IllegalGeneration.Code
	default:
		m := g.members[memberID]
		m.deadline = c.now().Add(m.sessionTimeout)
	}
	if writes {
		g.hasOffsets = true
		g.lastCommit = c.now()
	}
	return 0
}
