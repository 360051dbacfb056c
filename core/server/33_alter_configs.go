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
		cerr := s.configResource(rr.ResourceType, rr.ResourceName, seen)
		if cerr == nil {
			m := map[string]string{}
			for _, kv := range rr.Configs {
				if kv.Value == nil {
					cerr = invalidConfig("Null value not supported for topic configs: %s", kv.Name)
					break
				}
				m[kv.Name] = *kv.Value
			}
			if cerr == nil {
				cerr = s.setTopicConfigs(rr.ResourceName, m, req.ValidateOnly)
			}
		}
		if cerr != nil {
			sr.ErrorCode, sr.ErrorMessage = cerr.code, strp(cerr.msg)
			c.fail(cerr.code)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}
