package server

import (
	"reflect"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/auth"
)

// Operations and resource types, short names for the checks below.
const (
	opRead            = kmsg.ACLOperationRead
	opWrite           = kmsg.ACLOperationWrite
	opCreate          = kmsg.ACLOperationCreate
	opDelete          = kmsg.ACLOperationDelete
	opAlter           = kmsg.ACLOperationAlter
	opDescribe        = kmsg.ACLOperationDescribe
	opClusterAction   = kmsg.ACLOperationClusterAction
	opDescribeConfigs = kmsg.ACLOperationDescribeConfigs
	opAlterConfigs    = kmsg.ACLOperationAlterConfigs
	opIdempotentWrite = kmsg.ACLOperationIdempotentWrite
	rtTopic           = kmsg.ACLResourceTypeTopic
	rtGroup           = kmsg.ACLResourceTypeGroup
	rtCluster         = kmsg.ACLResourceTypeCluster
	rtTxnID           = kmsg.ACLResourceTypeTransactionalId
	clusterName       = "kafka-cluster"
)

var (
	codeTopicDenied   = kerr.TopicAuthorizationFailed.Code
	codeGroupDenied   = kerr.GroupAuthorizationFailed.Code
	codeClusterDenied = kerr.ClusterAuthorizationFailed.Code
	codeTxnDenied     = kerr.TransactionalIDAuthorizationFailed.Code
)

// authorize applies the ACLs to a request before its handler runs, with
// Kafka's per-API rules. Resources the principal may not touch are taken
// out of the request and answered with *_AUTHORIZATION_FAILED by after,
// which patches the handler's response; a non-nil deny answers the whole
// request without running the handler. With ACLs off it does nothing.
func (s *Server) authorize(c *call, req kmsg.Request) (deny kmsg.Response, after func(kmsg.Response)) {
	if !s.authzActive() {
		return nil, nil
	}
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		if r.TransactionID != nil && !s.allowed(c, opWrite, rtTxnID, *r.TransactionID) {
			return errorResponse(c, req, codeTxnDenied), nil
		}
		var denied []kmsg.ProduceRequestTopic
		r.Topics, denied = splitBy(r.Topics, func(t kmsg.ProduceRequestTopic) bool { return s.allowed(c, opWrite, rtTopic, t.Topic) })
		return nil, func(resp kmsg.Response) {
			pr, _ := resp.(*kmsg.ProduceResponse)
			for _, t := range denied {
				c.fail(codeTopicDenied)
				if pr == nil {
					continue // acks=0
				}
				st := kmsg.NewProduceResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					st.Partitions = append(st.Partitions, newProducePartition(p.Partition, codeTopicDenied))
				}
				pr.Topics = append(pr.Topics, st)
			}
		}
	case *kmsg.FetchRequest:
		if r.ReplicaID >= 0 {
			if !s.allowed(c, opClusterAction, rtCluster, clusterName) {
				return errorResponse(c, req, codeClusterDenied), nil
			}
			return nil, nil
		}
		var denied []kmsg.FetchRequestTopic
		r.Topics, denied = splitBy(r.Topics, func(t kmsg.FetchRequestTopic) bool { return s.allowed(c, opRead, rtTopic, t.Topic) })
		return nil, func(resp kmsg.Response) {
			fr := resp.(*kmsg.FetchResponse)
			for _, t := range denied {
				c.fail(codeTopicDenied)
				st := kmsg.NewFetchResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					st.Partitions = append(st.Partitions, newFetchPartition(p.Partition, codeTopicDenied))
				}
				fr.Topics = append(fr.Topics, st)
			}
		}
	case *kmsg.ListOffsetsRequest:
		var denied []kmsg.ListOffsetsRequestTopic
		r.Topics, denied = splitBy(r.Topics, func(t kmsg.ListOffsetsRequestTopic) bool { return s.allowed(c, opDescribe, rtTopic, t.Topic) })
		return nil, func(resp kmsg.Response) {
			lr := resp.(*kmsg.ListOffsetsResponse)
			for _, t := range denied {
				c.fail(codeTopicDenied)
				st := kmsg.NewListOffsetsResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					st.Partitions = append(st.Partitions, newListOffsetsPartition(p.Partition, codeTopicDenied))
				}
				lr.Topics = append(lr.Topics, st)
			}
		}
	case *kmsg.OffsetForLeaderEpochRequest:
		var denied []kmsg.OffsetForLeaderEpochRequestTopic
		r.Topics, denied = splitBy(r.Topics, func(t kmsg.OffsetForLeaderEpochRequestTopic) bool {
			return s.allowed(c, opDescribe, rtTopic, t.Topic)
		})
		return nil, func(resp kmsg.Response) {
			or := resp.(*kmsg.OffsetForLeaderEpochResponse)
			for _, t := range denied {
				c.fail(codeTopicDenied)
				st := kmsg.NewOffsetForLeaderEpochResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					st.Partitions = append(st.Partitions, newOffsetForLeaderEpochPartition(p.Partition, codeTopicDenied))
				}
				or.Topics = append(or.Topics, st)
			}
		}
	case *kmsg.MetadataRequest:
		return s.authorizeMetadata(c, r)
	case *kmsg.CreateTopicsRequest:
		canCreateAll := s.may(c, opCreate, rtCluster, clusterName)
		var denied []kmsg.CreateTopicsRequestTopic
		r.Topics, denied = splitBy(r.Topics, func(t kmsg.CreateTopicsRequestTopic) bool {
			return canCreateAll || s.allowed(c, opCreate, rtTopic, t.Topic)
		})
		return nil, func(resp kmsg.Response) {
			cr := resp.(*kmsg.CreateTopicsResponse)
			for _, t := range denied {
				c.fail(codeTopicDenied)
				st := kmsg.NewCreateTopicsResponseTopic()
				st.Topic, st.ErrorCode = t.Topic, codeTopicDenied
				st.NumPartitions, st.ReplicationFactor = -1, -1
				cr.Topics = append(cr.Topics, st)
			}
		}
	case *kmsg.DeleteTopicsRequest:
		var deniedNames []string
		r.TopicNames, deniedNames = splitBy(r.TopicNames, func(t string) bool { return s.allowed(c, opDelete, rtTopic, t) })
		var denied []kmsg.DeleteTopicsRequestTopic
		r.Topics, denied = splitBy(r.Topics, func(t kmsg.DeleteTopicsRequestTopic) bool {
			name := ""
			if t.Topic != nil {
				name = *t.Topic
			} else if n, ok := s.topicByID(t.TopicID); ok {
				name = n
			}
			return s.allowed(c, opDelete, rtTopic, name)
		})
		return nil, func(resp kmsg.Response) {
			dr := resp.(*kmsg.DeleteTopicsResponse)
			add := func(name *string, id [16]byte) {
				c.fail(codeTopicDenied)
				st := kmsg.NewDeleteTopicsResponseTopic()
				st.Topic, st.TopicID, st.ErrorCode = name, id, codeTopicDenied
				dr.Topics = append(dr.Topics, st)
			}
			for _, n := range deniedNames {
				add(strp(n), [16]byte{})
			}
			for _, t := range denied {
				add(t.Topic, t.TopicID)
			}
		}
	case *kmsg.CreatePartitionsRequest:
		var denied []kmsg.CreatePartitionsRequestTopic
		r.Topics, denied = splitBy(r.Topics, func(t kmsg.CreatePartitionsRequestTopic) bool { return s.allowed(c, opAlter, rtTopic, t.Topic) })
		return nil, func(resp kmsg.Response) {
			cr := resp.(*kmsg.CreatePartitionsResponse)
			for _, t := range denied {
				c.fail(codeTopicDenied)
				st := kmsg.NewCreatePartitionsResponseTopic()
				st.Topic, st.ErrorCode = t.Topic, codeTopicDenied
				cr.Topics = append(cr.Topics, st)
			}
		}
	case *kmsg.DescribeConfigsRequest:
		var denied []kmsg.DescribeConfigsRequestResource
		r.Resources, denied = splitBy(r.Resources, func(rs kmsg.DescribeConfigsRequestResource) bool {
			if rs.ResourceType == kmsg.ConfigResourceTypeTopic {
				return s.allowed(c, opDescribeConfigs, rtTopic, rs.ResourceName)
			}
			return s.allowed(c, opDescribeConfigs, rtCluster, clusterName)
		})
		return nil, func(resp kmsg.Response) {
			dr := resp.(*kmsg.DescribeConfigsResponse)
			for _, rs := range denied {
				code := codeClusterDenied
				if rs.ResourceType == kmsg.ConfigResourceTypeTopic {
					code = codeTopicDenied
				}
				c.fail(code)
				sr := kmsg.NewDescribeConfigsResponseResource()
				sr.ResourceType, sr.ResourceName, sr.ErrorCode = rs.ResourceType, rs.ResourceName, code
				dr.Resources = append(dr.Resources, sr)
			}
		}
	case *kmsg.DeleteRecordsRequest:
		var denied []kmsg.DeleteRecordsRequestTopic
		r.Topics, denied = splitBy(r.Topics, func(t kmsg.DeleteRecordsRequestTopic) bool { return s.allowed(c, opDelete, rtTopic, t.Topic) })
		return nil, func(resp kmsg.Response) {
			dr := resp.(*kmsg.DeleteRecordsResponse)
			for _, t := range denied {
				c.fail(codeTopicDenied)
				st := kmsg.NewDeleteRecordsResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					st.Partitions = append(st.Partitions, newDeleteRecordsPartition(p.Partition, codeTopicDenied))
				}
				dr.Topics = append(dr.Topics, st)
			}
		}
	case *kmsg.AlterConfigsRequest:
		var denied []kmsg.AlterConfigsRequestResource
		r.Resources, denied = splitBy(r.Resources, func(rs kmsg.AlterConfigsRequestResource) bool {
			return s.mayAlterConfigs(c, rs.ResourceType, rs.ResourceName)
		})
		return nil, func(resp kmsg.Response) {
			ar := resp.(*kmsg.AlterConfigsResponse)
			for _, rs := range denied {
				code := s.alterConfigsDenied(c, rs.ResourceType)
				sr := kmsg.NewAlterConfigsResponseResource()
				sr.ResourceType, sr.ResourceName, sr.ErrorCode = rs.ResourceType, rs.ResourceName, code
				ar.Resources = append(ar.Resources, sr)
			}
		}
	case *kmsg.IncrementalAlterConfigsRequest:
		var denied []kmsg.IncrementalAlterConfigsRequestResource
		r.Resources, denied = splitBy(r.Resources, func(rs kmsg.IncrementalAlterConfigsRequestResource) bool {
			return s.mayAlterConfigs(c, rs.ResourceType, rs.ResourceName)
		})
		return nil, func(resp kmsg.Response) {
			ar := resp.(*kmsg.IncrementalAlterConfigsResponse)
			for _, rs := range denied {
				code := s.alterConfigsDenied(c, rs.ResourceType)
				sr := kmsg.NewIncrementalAlterConfigsResponseResource()
				sr.ResourceType, sr.ResourceName, sr.ErrorCode = rs.ResourceType, rs.ResourceName, code
				ar.Resources = append(ar.Resources, sr)
			}
		}
	case *kmsg.DescribeLogDirsRequest, *kmsg.DescribeClusterRequest:
		if !s.allowed(c, opDescribe, rtCluster, clusterName) {
			return errorResponse(c, req, codeClusterDenied), nil
		}
	case *kmsg.DescribeProducersRequest:
		var denied []kmsg.DescribeProducersRequestTopic
		r.Topics, denied = splitBy(r.Topics, func(t kmsg.DescribeProducersRequestTopic) bool { return s.allowed(c, opRead, rtTopic, t.Topic) })
		return nil, func(resp kmsg.Response) {
			dr := resp.(*kmsg.DescribeProducersResponse)
			for _, t := range denied {
				c.fail(codeTopicDenied)
				st := kmsg.NewDescribeProducersResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					sp := kmsg.NewDescribeProducersResponseTopicPartition()
					sp.Partition, sp.ErrorCode = p, codeTopicDenied
					st.Partitions = append(st.Partitions, sp)
				}
				dr.Topics = append(dr.Topics, st)
			}
		}
	case *kmsg.InitProducerIDRequest:
		if r.TransactionalID != nil {
			if !s.allowed(c, opWrite, rtTxnID, *r.TransactionalID) {
				return errorResponse(c, req, codeTxnDenied), nil
			}
			return nil, nil
		}
		// Idempotence needs IDEMPOTENT_WRITE on the cluster or, as in
		// Kafka 3, WRITE on some topic.
		if !s.may(c, opIdempotentWrite, rtCluster, clusterName) &&
			!s.sec.authz.AuthorizeAny(c.conn.principal, c.conn.host, opWrite, rtTopic) {
			return errorResponse(c, req, codeClusterDenied), nil
		}
	case *kmsg.FindCoordinatorRequest:
		return s.authorizeFindCoordinator(c, r)
	case *kmsg.AddPartitionsToTxnRequest, *kmsg.AddOffsetsToTxnRequest, *kmsg.EndTxnRequest, *kmsg.TxnOffsetCommitRequest,
		*kmsg.DescribeTransactionsRequest, *kmsg.ListTransactionsRequest, *kmsg.WriteTxnMarkersRequest:
		return s.authorizeTxn(c, req) // txn_authorize.go
	default:
		return s.authorizeGroupRequest(c, req)
	}
	return nil, nil
}

func (s *Server) authorizeMetadata(c *call, r *kmsg.MetadataRequest) (kmsg.Response, func(kmsg.Response)) {
	all := r.Topics == nil || (r.Version == 0 && len(r.Topics) == 0)
	var denied []kmsg.MetadataRequestTopic
	if !all {
		r.Topics, denied = splitBy(r.Topics, func(t kmsg.MetadataRequestTopic) bool {
			return t.Topic == nil || s.allowed(c, opDescribe, rtTopic, *t.Topic)
		})
		if len(r.Topics) == 0 {
			r.Topics = []kmsg.MetadataRequestTopic{} // not null: null would list all
		}
		if (r.Version < 4 || r.AllowAutoTopicCreation) && !s.may(c, opCreate, rtCluster, clusterName) {
			// Auto-creation needs CREATE: without it the topic is only looked up.
			var kept []kmsg.MetadataRequestTopic
			for _, t := range r.Topics {
				if t.Topic == nil {
					kept = append(kept, t)
					continue
				}
				if _, ok := s.topics.Get(*t.Topic); ok || s.allowed(c, opCreate, rtTopic, *t.Topic) {
					kept = append(kept, t)
				} else {
					denied = append(denied, t)
				}
			}
			if kept == nil {
				kept = []kmsg.MetadataRequestTopic{}
			}
			r.Topics = kept
		}
	}
	return nil, func(resp kmsg.Response) {
		mr := resp.(*kmsg.MetadataResponse)
		if all {
			// Listing everything shows only what the principal may describe.
			mr.Topics, _ = splitBy(mr.Topics, func(t kmsg.MetadataResponseTopic) bool {
				return t.Topic != nil && s.sec.authz.Authorize(c.conn.principal, c.conn.host, opDescribe, rtTopic, *t.Topic)
			})
		}
		for _, t := range denied {
			mr.Topics = append(mr.Topics, topicError(c, *t.Topic, codeTopicDenied))
		}
	}
}

func (s *Server) authorizeFindCoordinator(c *call, r *kmsg.FindCoordinatorRequest) (kmsg.Response, func(kmsg.Response)) {
	check := func(key string) int16 {
		if r.CoordinatorType == 1 {
			if !s.allowed(c, opDescribe, rtTxnID, key) {
				return codeTxnDenied
			}
		} else if !s.allowed(c, opDescribe, rtGroup, key) {
			return codeGroupDenied
		}
		return 0
	}
	return nil, func(resp kmsg.Response) {
		fr := resp.(*kmsg.FindCoordinatorResponse)
		if r.Version < 4 {
			if code := check(r.CoordinatorKey); code != 0 {
				c.fail(code)
				fr.ErrorCode, fr.NodeID, fr.Host, fr.Port = code, -1, "", -1
			}
			return
		}
		for i := range fr.Coordinators {
			co := &fr.Coordinators[i]
			if code := check(co.Key); code != 0 {
				c.fail(code)
				co.ErrorCode, co.NodeID, co.Host, co.Port = code, -1, "", -1
			}
		}
	}
}

// authorizeGroupRequest applies the group and offset rules: joining,
// syncing, heartbeats, leaving and committing need READ on the group;
// fetching offsets and describing need DESCRIBE; deleting needs DELETE;
// ListGroups shows only the groups the principal may describe.
func (s *Server) authorizeGroupRequest(c *call, req kmsg.Request) (kmsg.Response, func(kmsg.Response)) {
	groupOnly := func(group string, op auth.Operation) (kmsg.Response, func(kmsg.Response)) {
		if !s.allowed(c, op, rtGroup, group) {
			return errorResponse(c, req, codeGroupDenied), nil
		}
		return nil, nil
	}
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		return groupOnly(r.Group, opRead)
	case *kmsg.SyncGroupRequest:
		return groupOnly(r.Group, opRead)
	case *kmsg.HeartbeatRequest:
		return groupOnly(r.Group, opRead)
	case *kmsg.LeaveGroupRequest:
		return groupOnly(r.Group, opRead)
	case *kmsg.OffsetDeleteRequest:
		return groupOnly(r.Group, opDelete)
	case *kmsg.OffsetCommitRequest:
		groupOK := s.allowed(c, opRead, rtGroup, r.Group)
		var denied []kmsg.OffsetCommitRequestTopic
		if groupOK {
			r.Topics, denied = splitBy(r.Topics, func(t kmsg.OffsetCommitRequestTopic) bool { return s.allowed(c, opRead, rtTopic, t.Topic) })
		} else {
			denied, r.Topics = r.Topics, nil
		}
		code := codeTopicDenied
		if !groupOK {
			code = codeGroupDenied
		}
		if !groupOK || len(r.Topics) == 0 {
			resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
			addDeniedCommits(c, resp, denied, code)
			return resp, nil
		}
		return nil, func(resp kmsg.Response) { addDeniedCommits(c, resp.(*kmsg.OffsetCommitResponse), denied, code) }
	case *kmsg.OffsetFetchRequest:
		if r.Version < 8 {
			if !s.allowed(c, opDescribe, rtGroup, r.Group) {
				return errorResponse(c, req, codeGroupDenied), nil
			}
			return nil, func(resp kmsg.Response) {
				or := resp.(*kmsg.OffsetFetchResponse)
				or.Topics, _ = splitBy(or.Topics, func(t kmsg.OffsetFetchResponseTopic) bool {
					return s.sec.authz.Authorize(c.conn.principal, c.conn.host, opDescribe, rtTopic, t.Topic)
				})
			}
		}
		return nil, func(resp kmsg.Response) {
			or := resp.(*kmsg.OffsetFetchResponse)
			for i := range or.Groups {
				g := &or.Groups[i]
				if !s.allowed(c, opDescribe, rtGroup, g.Group) {
					c.fail(codeGroupDenied)
					g.ErrorCode, g.Topics = codeGroupDenied, nil
					continue
				}
				g.Topics, _ = splitBy(g.Topics, func(t kmsg.OffsetFetchResponseGroupTopic) bool {
					return s.sec.authz.Authorize(c.conn.principal, c.conn.host, opDescribe, rtTopic, t.Topic)
				})
			}
		}
	case *kmsg.DescribeGroupsRequest:
		return nil, func(resp kmsg.Response) {
			dr := resp.(*kmsg.DescribeGroupsResponse)
			for i := range dr.Groups {
				g := &dr.Groups[i]
				if !s.allowed(c, opDescribe, rtGroup, g.Group) {
					c.fail(codeGroupDenied)
					name := g.Group
					*g = kmsg.NewDescribeGroupsResponseGroup()
					g.Group, g.ErrorCode = name, codeGroupDenied
				}
			}
		}
	case *kmsg.ListGroupsRequest:
		if s.may(c, opDescribe, rtCluster, clusterName) {
			return nil, nil
		}
		return nil, func(resp kmsg.Response) {
			lr := resp.(*kmsg.ListGroupsResponse)
			lr.Groups, _ = splitBy(lr.Groups, func(g kmsg.ListGroupsResponseGroup) bool {
				return s.sec.authz.Authorize(c.conn.principal, c.conn.host, opDescribe, rtGroup, g.Group)
			})
		}
	case *kmsg.DeleteGroupsRequest:
		var denied []string
		r.Groups, denied = splitBy(r.Groups, func(g string) bool { return s.allowed(c, opDelete, rtGroup, g) })
		return nil, func(resp kmsg.Response) {
			dr := resp.(*kmsg.DeleteGroupsResponse)
			for _, g := range denied {
				c.fail(codeGroupDenied)
				sg := kmsg.NewDeleteGroupsResponseGroup()
				sg.Group, sg.ErrorCode = g, codeGroupDenied
				dr.Groups = append(dr.Groups, sg)
			}
		}
	}
	return nil, nil
}

// addDeniedCommits answers every partition of the refused topics with
// code, counting each topic as a failure on c (when there is one).
func addDeniedCommits(c *call, resp *kmsg.OffsetCommitResponse, denied []kmsg.OffsetCommitRequestTopic, code int16) {
	for _, t := range denied {
		if c != nil {
			c.fail(code)
		}
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = t.Topic
		for _, p := range t.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition, sp.ErrorCode = p.Partition, code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
}

// may is allowed without counting or logging a refusal, for checks that
// only pick between two permitted paths.
func (s *Server) may(c *call, op auth.Operation, rt auth.ResourceType, name string) bool {
	return s.sec.authz.Authorize(c.conn.principal, c.conn.host, op, rt, name)
}

// errorResponse is req's response kind with its top-level error code set,
// counted as a failure on c.
func errorResponse(c *call, req kmsg.Request, code int16) kmsg.Response {
	c.fail(code)
	return withErrorCode(req, code)
}

// withErrorCode is req's response kind with its top-level error code set.
func withErrorCode(req kmsg.Request, code int16) kmsg.Response {
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if f := reflect.ValueOf(resp).Elem().FieldByName("ErrorCode"); f.IsValid() && f.CanSet() {
		f.SetInt(int64(code))
	}
	return resp
}

// splitBy partitions xs into those keep accepts and the rest.
func splitBy[T any](xs []T, keep func(T) bool) (kept, dropped []T) {
	for _, x := range xs {
		if keep(x) {
			kept = append(kept, x)
		} else {
			dropped = append(dropped, x)
		}
	}
	return kept, dropped
}

// mayAlterConfigs is ALTER_CONFIGS on the topic, or on the cluster for
// broker resources.
func (s *Server) mayAlterConfigs(c *call, typ kmsg.ConfigResourceType, name string) bool {
	if typ == kmsg.ConfigResourceTypeTopic {
		return s.allowed(c, opAlterConfigs, rtTopic, name)
	}
	return s.allowed(c, opAlterConfigs, rtCluster, clusterName)
}

// alterConfigsDenied counts a refused resource and returns its code.
func (s *Server) alterConfigsDenied(c *call, typ kmsg.ConfigResourceType) int16 {
	code := codeClusterDenied
	if typ == kmsg.ConfigResourceTypeTopic {
		code = codeTopicDenied
	}
	c.fail(code)
	return code
}
