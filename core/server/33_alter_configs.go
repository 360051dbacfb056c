package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// AlterConfigs v0-v2: each topic's configs are replaced by the given set
// (configs not named return to their defaults), as in Kafka.
func init() { register(33, 0, 2, (*Server).handleAlterConfigs) }

func (s *Server) handleAlterConfigs(_ context.Context, c *call,
	req *kmsg.AlterConfigsRequest, resp *kmsg.AlterConfigsResponse) (kmsg.Response, error) {
	seen := map[string]bool{}
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		sr.ErrorCode, sr.ErrorMessage = s.alterResource(c, rr.ResourceType, rr.ResourceName, seen, func() *configError {
			return s.replaceConfigs(rr, req.ValidateOnly)
		})
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// replaceConfigs sets a topic's configs to exactly those rr names.
func (s *Server) replaceConfigs(rr kmsg.AlterConfigsRequestResource, validateOnly bool) *configError {
	m := map[string]string{}
	for _, kv := range rr.Configs {
		if kv.Value == nil {
			return invalidConfig("Null value not supported for topic configs: %s", kv.Name)
		}
		m[kv.Name] = *kv.Value
	}
	return s.setTopicConfigs(rr.ResourceName, m, validateOnly)
}
