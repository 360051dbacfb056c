package server

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/storage"
)

// A topic's dynamic configs are kept by their Kafka names, as Kafka does, in
// the cluster metadata (every broker turns them into its log config).
// AlterConfigs replaces the whole set; IncrementalAlterConfigs
// edits it key by key. Both validate the result as CreateTopics does.

// configError is an INVALID_CONFIG (or other Kafka) refusal of one resource.
type configError struct {
	code int16
	msg  string
}

func (e *configError) Error() string { return e.msg }

func invalidConfig(format string, args ...any) *configError {
	return &configError{code: kerr.InvalidConfig.Code, msg: fmt.Sprintf(format, args...)}
}

// dynamicTopicConfigs returns topic's configs as set (not defaults).
func (s *Server) dynamicTopicConfigs(topic string) (map[string]string, bool) {
	t, ok := s.cluster.Topic(topic)
	if !ok {
		return nil, false
	}
	return maps.Clone(t.Config), true
}

func parseTopicConfigMap(m map[string]string) (storage.LogConfig, error) {
	names := slices.Sorted(maps.Keys(m))
	kv := make([]kmsg.CreateTopicsRequestTopicConfig, 0, len(names))
	for _, k := range names {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, strp(m[k])
		kv = append(kv, c)
	}
	return parseTopicConfigs(kv)
}

// clusterOnlyConfigs are topic configs kept in the cluster metadata only.
func clusterOnlyConfig(name string) bool {
	return name == minISRConfig || name == cluster.UncleanLeaderElectionConfig
}

// checkConfigName refuses a name this broker does not know, in Kafka's words.
func (s *Server) checkConfigName(name string) *configError {
	if _, ok := findTopicConfig(name); ok {
		return nil
	}
	if clusterOnlyConfig(name) {
		return nil
	}
	return invalidConfig("Unknown topic config name: %s", name)
}

// validateTopicConfigs checks a topic's complete new config set and returns
// the storage override it produces.
func (s *Server) validateTopicConfigs(topic string, m map[string]string) (storage.LogConfig, *configError) {
	storageKeys := map[string]string{}
	for k, v := range m {
		if e := s.checkConfigName(k); e != nil {
			return storage.LogConfig{}, e
		}
		if clusterOnlyConfig(k) {
			if err := s.checkClusterConfig(topic, k, v); err != nil {
				return storage.LogConfig{}, err
			}
			continue
		}
		tc, _ := findTopicConfig(k)
		var probe storage.LogConfig
		if err := tc.set(&probe, v); err != nil {
			return storage.LogConfig{}, invalidConfig("Invalid value %s for configuration %s: %v", v, k, err)
		}
		storageKeys[k] = v
	}
	lc, err := parseTopicConfigMap(storageKeys)
	if err != nil {
		return lc, invalidConfig("%v", err)
	}
	return lc, nil
}

func (s *Server) checkClusterConfig(topic, k, v string) *configError {
	switch k {
	case minISRConfig:
		n, err := strconv.Atoi(v)
		rf := 0
		if t, ok := s.cluster.Topic(topic); ok && len(t.Partitions) > 0 {
			rf = len(t.Partitions[0].Replicas)
		}
		if err != nil || n < 1 || (rf > 0 && n > rf) {
			return invalidConfig("Invalid value %s for configuration %s: want 1..%d (the replication factor)", v, k, rf)
		}
	case cluster.UncleanLeaderElectionConfig:
		if v != "true" && v != "false" {
			return invalidConfig("Invalid value %s for configuration %s: Expected value to be either true or false", v, k)
		}
	}
	return nil
}

// setTopicConfigs validates and (unless validateOnly) installs topic's new
// complete config set, taking effect at once on every partition.
func (s *Server) setTopicConfigs(topic string, m map[string]string, validateOnly bool) *configError {
	_, cerr := s.validateTopicConfigs(topic, m)
	if cerr != nil || validateOnly {
		return cerr
	}
	ctx, cancel := context.WithTimeout(s.ctx, proposalTimeout)
	defer cancel()
	if len(m) == 0 {
		m = nil
	}
	if err := s.cluster.AlterTopicConfig(ctx, topic, m); err != nil {
		return &configError{code: errorCode(err), msg: err.Error()}
	}
	s.replicas.reconcile()
	s.logger.Info("altered topic configs", "topic", topic, "configs", m)
	return nil
}

// configResource checks one resource of an alter request before its configs
// are looked at: topics only (broker configs come from the core's config file
// and flags), existing, and named once per request.
func (s *Server) configResource(typ kmsg.ConfigResourceType, name string, seen map[string]bool) *configError {
	key := strconv.Itoa(int(typ)) + "/" + name
	if seen[key] {
		return &configError{code: kerr.InvalidRequest.Code, msg: "Duplicate resource " + name}
	}
	seen[key] = true
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
		return &configError{code: kerr.InvalidRequest.Code, msg: "broker configs are static here: set them in the core's config file or flags"}
	default:
		return &configError{code: kerr.InvalidRequest.Code, msg: fmt.Sprintf("unsupported resource type %d", typ)}
	}
	if _, ok := s.dynamicTopicConfigs(name); !ok {
		return &configError{code: kerr.UnknownTopicOrPartition.Code, msg: "Topic " + name + " does not exist"}
	}
	return nil
}

// alterResource answers one resource of an alter request: configResource
// checks it, then edit changes its configs. The first refusal is the
// resource's error code and message, counted as a failure on c.
func (s *Server) alterResource(c *call, typ kmsg.ConfigResourceType, name string, seen map[string]bool,
	edit func() *configError) (int16, *string) {
	cerr := s.configResource(typ, name, seen)
	if cerr == nil {
		cerr = edit()
	}
	if cerr == nil {
		return 0, nil
	}
	c.fail(cerr.code)
	return cerr.code, strp(cerr.msg)
}

// listConfig reports whether name holds a comma-separated list (APPEND and
// SUBTRACT apply only to those).
func listConfig(name string) bool {
	tc, ok := findTopicConfig(name)
	return ok && tc.typ == kmsg.ConfigTypeList
}

// currentValue is a config's value as in force: set, else the default.
func (s *Server) currentValue(topic, name string, set map[string]string) string {
	if v, ok := set[name]; ok {
		return v
	}
	if tc, ok := findTopicConfig(name); ok {
		if info, ok := s.topics.Get(topic); ok {
			return tc.get(info.Config)
		}
		return tc.get(s.cfg.Log.WithDefaults())
	}
	return ""
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// applyTopicConfig brings the local logs of t to the configs in the cluster
// metadata (AlterConfigs on any broker), without a restart.
func (m *replicaManager) applyTopicConfig(t *cluster.Topic) {
	lc, err := topicLogConfig(t.Config)
	if err != nil {
		m.s.logger.Error("topic config from metadata", "topic", t.Name, "err", err)
		return
	}
	if cur, ok := m.s.topics.Override(t.Name); ok && cur != lc {
		if err := m.s.topics.Reconfigure(t.Name, lc); err != nil {
			m.s.logger.Error("apply topic config", "topic", t.Name, "err", err)
		}
	}
}
