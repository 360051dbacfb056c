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
		return nil, refuse(c, &r.Topics,
			func(t kmsg.ProduceRequestTopic) int16 { return s.authzCode(c, opWrite, rtTopic, t.Topic) },
			func(pr *kmsg.ProduceResponse, t kmsg.ProduceRequestTopic, code int16) {
				if pr == nil {
					return // acks=0
				}
				st := kmsg.NewProduceResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					st.Partitions = append(st.Partitions, newProducePartition(p.Partition, code))
				}
				pr.Topics = append(pr.Topics, st)
			})
	case *kmsg.FetchRequest:
		if r.ReplicaID >= 0 {
			return s.deny(c, req, opClusterAction, rtCluster, clusterName), nil
		}
		return nil, refuse(c, &r.Topics,
			func(t kmsg.FetchRequestTopic) int16 { return s.authzCode(c, opRead, rtTopic, t.Topic) },
			func(fr *kmsg.FetchResponse, t kmsg.FetchRequestTopic, code int16) {
				st := kmsg.NewFetchResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					st.Partitions = append(st.Partitions, newFetchPartition(p.Partition, code))
				}
				fr.Topics = append(fr.Topics, st)
			})
	case *kmsg.ListOffsetsRequest:
		return nil, refuse(c, &r.Topics,
			func(t kmsg.ListOffsetsRequestTopic) int16 { return s.authzCode(c, opDescribe, rtTopic, t.Topic) },
			func(lr *kmsg.ListOffsetsResponse, t kmsg.ListOffsetsRequestTopic, code int16) {
				st := kmsg.NewListOffsetsResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					st.Partitions = append(st.Partitions, newListOffsetsPartition(p.Partition, code))
				}
				lr.Topics = append(lr.Topics, st)
			})
	case *kmsg.OffsetForLeaderEpochRequest:
		return nil, refuse(c, &r.Topics,
			func(t kmsg.OffsetForLeaderEpochRequestTopic) int16 {
				return s.authzCode(c, opDescribe, rtTopic, t.Topic)
			},
			func(or *kmsg.OffsetForLeaderEpochResponse, t kmsg.OffsetForLeaderEpochRequestTopic, code int16) {
				st := kmsg.NewOffsetForLeaderEpochResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					st.Partitions = append(st.Partitions, newOffsetForLeaderEpochPartition(p.Partition, code))
				}
				or.Topics = append(or.Topics, st)
			})
	case *kmsg.MetadataRequest:
		return s.authorizeMetadata(c, r)
	case *kmsg.CreateTopicsRequest:
		canCreateAll := s.may(c, opCreate, rtCluster, clusterName)
		return nil, refuse(c, &r.Topics,
			func(t kmsg.CreateTopicsRequestTopic) int16 {
				if canCreateAll {
					return 0
				}
				return s.authzCode(c, opCreate, rtTopic, t.Topic)
			},
			func(cr *kmsg.CreateTopicsResponse, t kmsg.CreateTopicsRequestTopic, code int16) {
				st := kmsg.NewCreateTopicsResponseTopic()
				st.Topic, st.ErrorCode = t.Topic, code
				st.NumPartitions, st.ReplicationFactor = -1, -1
				cr.Topics = append(cr.Topics, st)
			})
	case *kmsg.DeleteTopicsRequest:
		add := func(dr *kmsg.DeleteTopicsResponse, name *string, id [16]byte, code int16) {
			st := kmsg.NewDeleteTopicsResponseTopic()
			st.Topic, st.TopicID, st.ErrorCode = name, id, code
			dr.Topics = append(dr.Topics, st)
		}
		byName := refuse(c, &r.TopicNames,
			func(t string) int16 { return s.authzCode(c, opDelete, rtTopic, t) },
			func(dr *kmsg.DeleteTopicsResponse, t string, code int16) { add(dr, strp(t), [16]byte{}, code) })
		byID := refuse(c, &r.Topics,
			func(t kmsg.DeleteTopicsRequestTopic) int16 {
				name := ""
				if t.Topic != nil {
					name = *t.Topic
				} else if n, ok := s.topicByID(t.TopicID); ok {
					name = n
				} else {
					return 0 // no such topic: the handler answers UNKNOWN_TOPIC_ID, as Kafka does
				}
				return s.authzCode(c, opDelete, rtTopic, name)
			},
			func(dr *kmsg.DeleteTopicsResponse, t kmsg.DeleteTopicsRequestTopic, code int16) {
				add(dr, t.Topic, t.TopicID, code)
			})
		return nil, func(resp kmsg.Response) {
			byName(resp)
			byID(resp)
		}
	case *kmsg.CreatePartitionsRequest:
		return nil, refuse(c, &r.Topics,
			func(t kmsg.CreatePartitionsRequestTopic) int16 { return s.authzCode(c, opAlter, rtTopic, t.Topic) },
			func(cr *kmsg.CreatePartitionsResponse, t kmsg.CreatePartitionsRequestTopic, code int16) {
				st := kmsg.NewCreatePartitionsResponseTopic()
				st.Topic, st.ErrorCode = t.Topic, code
				cr.Topics = append(cr.Topics, st)
			})
	case *kmsg.DescribeConfigsRequest:
		return nil, refuse(c, &r.Resources,
			func(rs kmsg.DescribeConfigsRequestResource) int16 {
				return s.configAuthzCode(c, opDescribeConfigs, rs.ResourceType, rs.ResourceName)
			},
			func(dr *kmsg.DescribeConfigsResponse, rs kmsg.DescribeConfigsRequestResource, code int16) {
				sr := kmsg.NewDescribeConfigsResponseResource()
				sr.ResourceType, sr.ResourceName, sr.ErrorCode = rs.ResourceType, rs.ResourceName, code
				dr.Resources = append(dr.Resources, sr)
			})
	case *kmsg.DeleteRecordsRequest:
		return nil, refuse(c, &r.Topics,
			func(t kmsg.DeleteRecordsRequestTopic) int16 { return s.authzCode(c, opDelete, rtTopic, t.Topic) },
			func(dr *kmsg.DeleteRecordsResponse, t kmsg.DeleteRecordsRequestTopic, code int16) {
				st := kmsg.NewDeleteRecordsResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					st.Partitions = append(st.Partitions, newDeleteRecordsPartition(p.Partition, code))
				}
				dr.Topics = append(dr.Topics, st)
			})
	case *kmsg.AlterConfigsRequest:
		return nil, refuse(c, &r.Resources,
			func(rs kmsg.AlterConfigsRequestResource) int16 {
				return s.configAuthzCode(c, opAlterConfigs, rs.ResourceType, rs.ResourceName)
			},
			func(ar *kmsg.AlterConfigsResponse, rs kmsg.AlterConfigsRequestResource, code int16) {
				sr := kmsg.NewAlterConfigsResponseResource()
				sr.ResourceType, sr.ResourceName, sr.ErrorCode = rs.ResourceType, rs.ResourceName, code
				ar.Resources = append(ar.Resources, sr)
			})
	case *kmsg.IncrementalAlterConfigsRequest:
		return nil, refuse(c, &r.Resources,
			func(rs kmsg.IncrementalAlterConfigsRequestResource) int16 {
				return s.configAuthzCode(c, opAlterConfigs, rs.ResourceType, rs.ResourceName)
			},
			func(ar *kmsg.IncrementalAlterConfigsResponse, rs kmsg.IncrementalAlterConfigsRequestResource, code int16) {
				sr := kmsg.NewIncrementalAlterConfigsResponseResource()
				sr.ResourceType, sr.ResourceName, sr.ErrorCode = rs.ResourceType, rs.ResourceName, code
				ar.Resources = append(ar.Resources, sr)
			})
	case *kmsg.DescribeLogDirsRequest, *kmsg.DescribeClusterRequest:
		return s.deny(c, req, opDescribe, rtCluster, clusterName), nil
	case *kmsg.DescribeProducersRequest:
		return nil, refuse(c, &r.Topics,
			func(t kmsg.DescribeProducersRequestTopic) int16 { return s.authzCode(c, opRead, rtTopic, t.Topic) },
			func(dr *kmsg.DescribeProducersResponse, t kmsg.DescribeProducersRequestTopic, code int16) {
				st := kmsg.NewDescribeProducersResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					sp := kmsg.NewDescribeProducersResponseTopicPartition()
					sp.Partition, sp.ErrorCode = p, code
					st.Partitions = append(st.Partitions, sp)
				}
				dr.Topics = append(dr.Topics, st)
			})
	case *kmsg.InitProducerIDRequest:
		if r.TransactionalID != nil {
			return s.deny(c, req, opWrite, rtTxnID, *r.TransactionalID), nil
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
				return t.Topic != nil && s.may(c, opDescribe, rtTopic, *t.Topic)
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
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		return s.deny(c, req, opRead, rtGroup, r.Group), nil
	case *kmsg.SyncGroupRequest:
		return s.deny(c, req, opRead, rtGroup, r.Group), nil
	case *kmsg.HeartbeatRequest:
		return s.deny(c, req, opRead, rtGroup, r.Group), nil
	case *kmsg.LeaveGroupRequest:
		return s.deny(c, req, opRead, rtGroup, r.Group), nil
	case *kmsg.OffsetDeleteRequest:
		return s.deny(c, req, opDelete, rtGroup, r.Group), nil
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
			if deny := s.deny(c, req, opDescribe, rtGroup, r.Group); deny != nil {
				return deny, nil
			}
			return nil, func(resp kmsg.Response) {
				or := resp.(*kmsg.OffsetFetchResponse)
				or.Topics, _ = splitBy(or.Topics, func(t kmsg.OffsetFetchResponseTopic) bool {
					return s.may(c, opDescribe, rtTopic, t.Topic)
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
					return s.may(c, opDescribe, rtTopic, t.Topic)
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
				return s.may(c, opDescribe, rtGroup, g.Group)
			})
		}
	case *kmsg.DeleteGroupsRequest:
		return nil, refuse(c, &r.Groups,
			func(g string) int16 { return s.authzCode(c, opDelete, rtGroup, g) },
			func(dr *kmsg.DeleteGroupsResponse, g string, code int16) {
				sg := kmsg.NewDeleteGroupsResponseGroup()
				sg.Group, sg.ErrorCode = g, code
				dr.Groups = append(dr.Groups, sg)
			})
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

// deny is req's whole response refused with rt's *_AUTHORIZATION_FAILED
// code (authzCode) when the principal may not op on the resource, counted as
// a failure on c; nil when it may.
func (s *Server) deny(c *call, req kmsg.Request, op auth.Operation, rt auth.ResourceType, name string) kmsg.Response {
	if code := s.authzCode(c, op, rt, name); code != 0 {
		return errorResponse(c, req, code)
	}
	return nil
}

// errorResponse is req's response kind with its top-level error code set,
// counted as a failure on c.
func errorResponse(c *call, req kmsg.Request, code int16) kmsg.Response {
	c.fail(code)
	return withErrorCode(req, code)
}

// withErrorCode is req's response kind with its top-level error code set,
// if it has one.
func withErrorCode(req kmsg.Request, code int16) kmsg.Response {
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if f := reflect.ValueOf(resp).Elem().FieldByName("ErrorCode"); f.IsValid() && f.Kind() == reflect.Int16 && f.CanSet() {
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

// refuse takes the entries of *xs that check refuses out of the request,
// so the handler never sees them, and returns the hook that answers each of
// them in the handler's response through answer, with the code check gave,
// counted as a failure on c. check returns 0 for an entry to keep.
func refuse[T any, R kmsg.Response](c *call, xs *[]T, check func(T) int16, answer func(R, T, int16)) func(kmsg.Response) {
	type refusal struct {
		x    T
		code int16
	}
	var kept []T
	var refused []refusal
	for _, x := range *xs {
		if code := check(x); code != 0 {
			refused = append(refused, refusal{x, code})
		} else {
			kept = append(kept, x)
		}
	}
	*xs = kept
	return func(resp kmsg.Response) {
		r, _ := resp.(R) // nil for a Produce with acks=0, which has no response
		for _, rf := range refused {
			c.fail(rf.code)
			answer(r, rf.x, rf.code)
		}
	}
}

// authzCode is 0 when the principal may op on the resource, else the
// *_AUTHORIZATION_FAILED code for its type (never 0, so a type missing here
// is still refused).
func (s *Server) authzCode(c *call, op auth.Operation, rt auth.ResourceType, name string) int16 {
	if s.allowed(c, op, rt, name) {
		return 0
	}
	switch rt {
	case rtTopic:
		return codeTopicDenied
	case rtGroup:
		return codeGroupDenied
	case rtTxnID:
		return codeTxnDenied
	default:
		return codeClusterDenied
	}
}

// configAuthzCode is authzCode for a config resource: op on the topic, or
// on the cluster for broker resources.
func (s *Server) configAuthzCode(c *call, op auth.Operation, typ kmsg.ConfigResourceType, name string) int16 {
	if typ == kmsg.ConfigResourceTypeTopic {
		return s.authzCode(c, op, rtTopic, name)
	}
	return s.authzCode(c, op, rtCluster, clusterName)
}
