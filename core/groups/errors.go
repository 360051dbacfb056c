package groups

import "github.com/twmb/franz-go/pkg/kmsg"

// errorResponse answers req with code in every error field it has, for
// requests the coordinator cannot serve at all (it is closing).
func errorResponse(req kmsg.Request, code int16) kmsg.Response {
	resp := req.ResponseKind()
	switch r := resp.(type) {
	case *kmsg.OffsetCommitResponse:
		answerCommit(req.(*kmsg.OffsetCommitRequest), r, func(int, int) int16 { return code })
	case *kmsg.OffsetFetchResponse:
		q := req.(*kmsg.OffsetFetchRequest)
		r.ErrorCode = code
		for _, t := range q.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition = p
				rp.Offset = -1
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
			}
			r.Topics = append(r.Topics, rt)
		}
		for _, g := range q.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group = g.Group
			rg.ErrorCode = code
			r.Groups = append(r.Groups, rg)
		}
	case *kmsg.JoinGroupResponse:
		r.ErrorCode = code
		r.MemberID = req.(*kmsg.JoinGroupRequest).MemberID
	case *kmsg.HeartbeatResponse:
		r.ErrorCode = code
	case *kmsg.LeaveGroupResponse:
		r.ErrorCode = code
	case *kmsg.SyncGroupResponse:
		r.ErrorCode = code
	case *kmsg.DescribeGroupsResponse:
		for _, name := range req.(*kmsg.DescribeGroupsRequest).Groups {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group = name
			rg.ErrorCode = code
			r.Groups = append(r.Groups, rg)
		}
	case *kmsg.ListGroupsResponse:
		r.ErrorCode = code
	case *kmsg.OffsetDeleteResponse:
		r.ErrorCode = code
	case *kmsg.DeleteGroupsResponse:
		answerDelete(req.(*kmsg.DeleteGroupsRequest), r, func(string) int16 { return code })
	}
	return resp
}
