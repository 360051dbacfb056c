package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeCluster v0-v1: the live brokers, the cluster id and the
// controller. Endpoint type 2 (controllers,
// KIP-919) is not served: clients talk to brokers only.
func init() { register(60, 0, 1, (*Server).handleDescribeCluster) }

func (s *Server) handleDescribeCluster(_ context.Context, c *call,
	req *kmsg.DescribeClusterRequest, resp *kmsg.DescribeClusterResponse) (kmsg.Response, error) {
	resp.ClusterID = s.cfg.ClusterID
	resp.EndpointType = req.EndpointType
	resp.ClusterAuthorizedOperations = -2147483648 // not asked for, or not computed
	if req.EndpointType > 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		resp.ErrorMessage = strp("only broker endpoints (type 1) are described")
		c.fail(resp.ErrorCode)
		return resp, nil
	}
	resp.ControllerID = -1
	if id, ok := s.cluster.Controller(); ok {
		resp.ControllerID = id
	}
	for _, mb := range s.cluster.Metadata().LiveBrokers() {
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID = mb.ID
		b.Host, b.Port = s.brokerEndpoint(c, mb)
		resp.Brokers = append(resp.Brokers, b)
	}
	return resp, nil
}
