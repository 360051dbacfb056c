package groups

import (
	"cmp"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage/meta"
)

func (c *Coordinator) offsetFetch(req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			resp.Groups = append(resp.Groups, c.fetchGroup(rg))
		}
		return resp
	}
	// v0-7 ask for one group; answer through the v8 path and reshape.
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = req.Group
	if req.Topics != nil {
		rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{}
	}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetFetchRequestGroupTopic()
		rt.Topic = t.Topic
		rt.Partitions = t.Partitions
		rg.Topics = append(rg.Topics, rt)
	}
	g := c.fetchGroup(rg)
	resp.ErrorCode = g.ErrorCode
	for _, t := range g.Topics {
		st := kmsg.NewOffsetFetchResponseTopic()
		st.Topic = t.Topic
		for _, p := range t.Partitions {
			sp := kmsg.NewOffsetFetchResponseTopicPartition()
			sp.Partition = p.Partition
			sp.Offset = p.Offset
			sp.LeaderEpoch = p.LeaderEpoch
			sp.Metadata = p.Metadata
			sp.ErrorCode = p.ErrorCode
			if g.ErrorCode != 0 {
				// v0-1 have no group-level error code.
				sp.ErrorCode = g.ErrorCode
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// fetchGroup answers one group's part of an OffsetFetch. Nil topics means
// every committed offset; requested partitions without a commit get
// offset -1, which tells the client to apply its reset policy.
func (c *Coordinator) fetchGroup(rg kmsg.OffsetFetchRequestGroup) kmsg.OffsetFetchResponseGroup {
	sg := kmsg.NewOffsetFetchResponseGroup()
	sg.Group = rg.Group
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed || c.store == nil {
		sg.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return sg
	}
	var committed map[meta.TopicPartition]meta.OffsetCommit
	if rg.Group != "" {
		var err error
		committed, err = c.store.FetchOffsets(rg.Group)
		if err != nil {
			c.log.Error("fetching offsets", "group", rg.Group, "err", err)
			sg.ErrorCode = kerr.UnknownServerError.Code
			return sg
		}
	}
	partition := func(tp meta.TopicPartition) kmsg.OffsetFetchResponseGroupTopicPartition {
		sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		sp.Partition = tp.Partition
		sp.Offset, sp.LeaderEpoch = -1, -1
		md := ""
		if oc, ok := committed[tp]; ok {
			sp.Offset, sp.LeaderEpoch, md = oc.Offset, oc.LeaderEpoch, oc.Metadata
		}
		sp.Metadata = &md
		return sp
	}
	if rg.Topics == nil {
		tps := make([]meta.TopicPartition, 0, len(committed))
		for tp := range committed {
			tps = append(tps, tp)
		}
		slices.SortFunc(tps, func(a, b meta.TopicPartition) int {
			return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
		})
		for _, tp := range tps {
			if n := len(sg.Topics); n == 0 || sg.Topics[n-1].Topic != tp.Topic {
				st := kmsg.NewOffsetFetchResponseGroupTopic()
				st.Topic = tp.Topic
				sg.Topics = append(sg.Topics, st)
			}
			st := &sg.Topics[len(sg.Topics)-1]
			st.Partitions = append(st.Partitions, partition(tp))
		}
		return sg
	}
	for _, t := range rg.Topics {
		st := kmsg.NewOffsetFetchResponseGroupTopic()
		st.Topic = t.Topic
		for _, p := range t.Partitions {
			st.Partitions = append(st.Partitions, partition(meta.TopicPartition{Topic: t.Topic, Partition: p}))
		}
		sg.Topics = append(sg.Topics, st)
	}
	return sg
}
