package server

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
)

// openLocalCluster forms the cluster of one, its state kept in meta.db. A
// data directory from before (topics only in storage, configs by name in
// the meta store) is adopted on first start: every topic enters the
// metadata with its partitions, configs and the name-derived id clients
// were already given.
func (s *Server) openLocalCluster(cc cluster.Config) (*cluster.Local, error) {
	saved, err := s.store.Value(localMetadataKey)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return nil, fmt.Errorf("read local cluster metadata: %w", err)
	}
	if len(saved) == 0 {
		saved = nil
	}
	save := func(state []byte) error { return s.store.PutValue(localMetadataKey, state) }
	local, err := cluster.NewLocal(cc, saved, save, s.logger.With("component", "cluster"))
	if err != nil {
		return nil, err
	}
	if saved != nil {
		return local, nil
	}
	for _, info := range s.topics.List() {
		id := topicID(info.Name)
		if err := local.AdoptTopic(info.Name, hex.EncodeToString(id[:]), info.Partitions, s.legacyTopicConfigs(info.Name)); err != nil {
			return nil, fmt.Errorf("adopt existing topics: %w", err)
		}
		_ = s.store.DeleteValue(legacyTopicConfigKey(info.Name))
		s.logger.Info("adopted topic into the cluster metadata", "topic", info.Name, "partitions", info.Partitions)
	}
	return local, nil
}

// legacyTopicConfigKey is where a single broker kept a topic's configs by
// name before the cluster metadata held them.
func legacyTopicConfigKey(topic string) string { return "topic-config/" + topic }

// legacyTopicConfigs are a topic's configs as a single broker kept them
// before: names in the meta store while they still produced the storage
// override, else what the override sets.
func (s *Server) legacyTopicConfigs(topic string) map[string]string {
	override, ok := s.topics.Override(topic)
	if !ok {
		return nil
	}
	if b, err := s.store.Value(legacyTopicConfigKey(topic)); err == nil && len(b) > 0 {
		var m map[string]string
		if json.Unmarshal(b, &m) == nil {
			if lc, err := parseTopicConfigMap(m); err == nil && lc == override {
				return nilIfEmpty(m)
			}
		}
	}
	m := map[string]string{}
	for _, tc := range topicConfigs {
		if v := tc.get(override); v != tc.get(storage.LogConfig{}) {
			m[tc.name] = v
		}
	}
	return nilIfEmpty(m)
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}
