package server

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeConfigs v0-v4 for topics and this broker.
func init() { register(32, 0, 4, (*Server).handleDescribeConfigs) }

func (s *Server) handleDescribeConfigs(_ context.Context, c *call,
	req *kmsg.DescribeConfigsRequest, resp *kmsg.DescribeConfigsResponse) (kmsg.Response, error) {
	brokerDefaults := s.cfg.Log.WithDefaults()
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			info, ok := s.topics.Get(rr.ResourceName)
			if !ok {
				sr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			for _, tc := range wanted(rr.ConfigNames) {
				v := tc.get(info.Config)
				src := kmsg.ConfigSourceDynamicTopicConfig
				if v == tc.get(brokerDefaults) {
					src = kmsg.ConfigSourceDefaultConfig
				}
				if tc.name == minISRConfig {
					// Kept in the cluster metadata, not the log config.
					v, src = strconv.Itoa(s.cfg.Replication.MinInsyncReplicas), kmsg.ConfigSourceDefaultConfig
					if t, ok := s.cluster.Topic(rr.ResourceName); ok && t.Config[minISRConfig] != "" {
						v, src = t.Config[minISRConfig], kmsg.ConfigSourceDynamicTopicConfig
					}
				}
				sr.Configs = append(sr.Configs, configEntry(tc, v, src, false))
			}
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(s.cfg.NodeID)) {
				sr.ErrorCode = kerr.InvalidRequest.Code
				sr.ErrorMessage = strp("unknown broker " + rr.ResourceName)
				break
			}
			for _, tc := range wanted(rr.ConfigNames) {
				sr.Configs = append(sr.Configs, configEntry(tc, tc.get(brokerDefaults), kmsg.ConfigSourceStaticBrokerConfig, true))
			}
		default:
			sr.ErrorCode = kerr.InvalidRequest.Code
			sr.ErrorMessage = strp("only topic and broker configs are described")
		}
		c.fail(sr.ErrorCode)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// wanted filters topicConfigs by the requested names (none = all).
func wanted(names []string) []topicConfig {
	if len(names) == 0 {
		return topicConfigs
	}
	var out []topicConfig
	for _, n := range names {
		if tc, ok := findTopicConfig(n); ok {
			out = append(out, tc)
		}
	}
	return out
}

func configEntry(tc topicConfig, v string, src kmsg.ConfigSource, readOnly bool) kmsg.DescribeConfigsResponseResourceConfig {
	e := kmsg.NewDescribeConfigsResponseResourceConfig()
	e.Name, e.Value = tc.name, strp(v)
	e.ReadOnly = readOnly
	e.IsDefault = src == kmsg.ConfigSourceDefaultConfig
	e.Source = src
	e.ConfigType = tc.typ
	return e
}
