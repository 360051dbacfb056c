package server

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// IncrementalAlterConfigs v0-v1: SET, DELETE, APPEND and SUBTRACT edit a
// topic's configs key by key; the result is validated whole and applied at
// once, or not at all.
func init() { register(44, 0, 1, (*Server).handleIncrementalAlterConfigs) }

func (s *Server) handleIncrementalAlterConfigs(_ context.Context, c *call,
	req *kmsg.IncrementalAlterConfigsRequest, resp *kmsg.IncrementalAlterConfigsResponse) (kmsg.Response, error) {
	seen := map[string]bool{}
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		sr.ErrorCode, sr.ErrorMessage = s.alterResource(c, rr.ResourceType, rr.ResourceName, seen, func() *configError {
			return s.incrementalAlter(rr, req.ValidateOnly)
		})
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// incrementalAlter applies rr's edits to a topic's configs.
func (s *Server) incrementalAlter(rr kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) *configError {
	topic := rr.ResourceName
	m, _ := s.dynamicTopicConfigs(topic)
	if m == nil {
		m = map[string]string{}
	}
	names := map[string]bool{}
	for _, kv := range rr.Configs {
		if names[kv.Name] {
			return &configError{code: kerr.InvalidRequest.Code, msg: "Error due to duplicate config keys: " + kv.Name}
		}
		names[kv.Name] = true
		if e := s.checkConfigName(kv.Name); e != nil {
			return e
		}
		switch kv.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if kv.Value == nil {
				return invalidConfig("Null value not supported for : %s", kv.Name)
			}
			m[kv.Name] = *kv.Value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(m, kv.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if !listConfig(kv.Name) {
				return invalidConfig("Config value %s is not allowed for config key: %s",
					strings.ToLower(kv.Op.String()), kv.Name)
			}
			if kv.Value == nil {
				return invalidConfig("Null value not supported for : %s", kv.Name)
			}
			cur := splitList(s.currentValue(topic, kv.Name, m))
			for _, item := range splitList(*kv.Value) {
				i := slices.Index(cur, item)
				switch {
				case kv.Op == kmsg.IncrementalAlterConfigOpAppend && i < 0:
					cur = append(cur, item)
				case kv.Op == kmsg.IncrementalAlterConfigOpSubtract && i >= 0:
					cur = slices.Delete(cur, i, i+1)
				}
			}
			m[kv.Name] = strings.Join(cur, ",")
		default:
			return &configError{code: kerr.InvalidRequest.Code, msg: "unknown config operation " + kv.Op.String()}
		}
	}
	return s.setTopicConfigs(topic, m, validateOnly)
}
