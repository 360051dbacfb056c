package server

import (
	"context"
	"path/filepath"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeLogDirs v0-v4: this broker's one log directory and the size of
// every partition replica it holds (all topics when Topics is null).
// Total and usable bytes are not measured (-1).
func init() { register(35, 0, 4, (*Server).handleDescribeLogDirs) }

func (s *Server) handleDescribeLogDirs(_ context.Context, _ *call,
	req *kmsg.DescribeLogDirsRequest, resp *kmsg.DescribeLogDirsResponse) (kmsg.Response, error) {
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = filepath.Join(s.cfg.DataDir, "logs")
	dir.TotalBytes, dir.UsableBytes = -1, -1
	type want struct {
		topic string
		parts []int32 // nil: every partition
	}
	var wants []want
	if req.Topics == nil {
		for _, t := range s.topics.List() {
			wants = append(wants, want{topic: t.Name})
		}
	} else {
		for _, rt := range req.Topics {
			wants = append(wants, want{rt.Topic, rt.Partitions})
			if rt.Partitions == nil {
				wants[len(wants)-1].parts = []int32{}
			}
		}
	}
	for _, w := range wants {
		info, ok := s.topics.Get(w.topic)
		if !ok {
			continue // Kafka leaves out what the broker does not hold
		}
		parts := w.parts
		if parts == nil {
			for p := int32(0); p < info.Partitions; p++ {
				parts = append(parts, p)
			}
		}
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = w.topic
		for _, p := range parts {
			l, err := s.topics.Partition(w.topic, p)
			if err != nil || !s.holdsReplica(w.topic, p) {
				continue
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition, dp.Size = p, l.Size()
			dt.Partitions = append(dt.Partitions, dp)
		}
		if len(dt.Partitions) > 0 {
			dir.Topics = append(dir.Topics, dt)
		}
	}
	resp.Dirs = append(resp.Dirs, dir)
	return resp, nil
}

// holdsReplica reports whether this broker is a replica of the partition:
// local data the metadata does not assign here (kept from before placement,
// until the replica manager deletes it) is not reported.
func (s *Server) holdsReplica(topic string, p int32) bool {
	t, ok := s.cluster.Topic(topic)
	if !ok || int(p) >= len(t.Partitions) {
		return false
	}
	return slices.Contains(t.Partitions[p].Replicas, s.cfg.NodeID)
}
