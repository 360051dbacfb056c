package groups

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage/meta"
)

// offsetDelete removes some committed offsets of a group (KIP-496), as
// admin tools do to reset a group's position in one topic. Kafka refuses
// it for topics a live consumer group still subscribes to.
func (c *Coordinator) offsetDelete(req *kmsg.OffsetDeleteRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()

	c.mu.Lock()
	g := c.groups[req.Group]
	var subscribed map[string]bool
	switch {
	case c.closed || c.store == nil:
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	case g == nil || g.state == stateDead:
		resp.ErrorCode = kerr.GroupIDNotFound.Code
	case g.state != stateEmpty && g.protocolType != "consumer":
		// Offsets of other protocols cannot be matched to a subscription.
		resp.ErrorCode = kerr.NonEmptyGroup.Code
	case g.state != stateEmpty:
		subscribed = g.subscribedTopics()
	}
	c.mu.Unlock()
	if resp.ErrorCode != 0 {
		return resp
	}

	var del []meta.TopicPartition
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			switch {
			case t.Topic == "" || (c.cfg.PartitionExists != nil && !c.cfg.PartitionExists(t.Topic, p.Partition)):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case subscribed[t.Topic]:
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			default:
				del = append(del, meta.TopicPartition{Topic: t.Topic, Partition: p.Partition})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(del) == 0 {
		return resp
	}
	if err := c.store.DeleteOffsets(req.Group, del); err != nil {
		c.log.Error("deleting offsets", "group", req.Group, "err", err)
		resp.ErrorCode = kerr.UnknownServerError.Code
		resp.Topics = nil
		return resp
	}
	// The group may have no offsets left: let the idle sweep drop it.
	left, err := c.store.FetchOffsets(req.Group)
	if err == nil && len(left) == 0 {
		c.mu.Lock()
		g.hasOffsets = false
		c.mu.Unlock()
	}
	return resp
}

// subscribedTopics is the union of the topics the members' consumer
// protocol metadata names; undecodable metadata subscribes to nothing, as
// in Kafka.
func (g *group) subscribedTopics() map[string]bool {
	out := make(map[string]bool)
	for _, m := range g.members {
		var md kmsg.ConsumerMemberMetadata
		if err := md.ReadFrom(m.metadataFor(g.protocol)); err != nil {
			continue
		}
		for _, t := range md.Topics {
			out[t] = true
		}
	}
	return out
}
