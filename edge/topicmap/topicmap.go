// Package topicmap decides where a publish goes: which stream (Kafka topic)
// an MQTT topic maps to, which device it names, and which partition of the
// stream a device's records land in.
package topicmap

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnmapped is returned for MQTT topics the mapping cannot place.
var ErrUnmapped = errors.New("topic does not map to a stream")

// Config is the mapping from MQTT topics to streams.
type Config struct {
	// StreamLevels is how many leading MQTT topic levels name the stream
	// (joined with "." because Kafka topic names cannot hold "/"); the next
	// level is the device. Default 1: "sensors/dev-1/reading" → stream
	// "sensors", device "dev-1".
	StreamLevels int `yaml:"stream_levels"`
}

// Mapper applies a Config.
type Mapper struct {
	levels int
}

// New validates cfg and returns its Mapper.
func New(cfg Config) (*Mapper, error) {
	if cfg.StreamLevels == 0 {
		cfg.StreamLevels = 1
	}
	if cfg.StreamLevels < 0 || cfg.StreamLevels > 8 {
		return nil, fmt.Errorf("topic map: stream_levels %d: want 1..8", cfg.StreamLevels)
	}
	return &Mapper{levels: cfg.StreamLevels}, nil
}

// Map returns the stream and device an MQTT topic names. It runs twice per
// publish (ACL and mapping), so it slices the topic instead of splitting it:
// no allocation unless the stream spans several levels.
func (m *Mapper) Map(topic string) (stream, device string, err error) {
	// end of the stream levels: the m.levels-th '/'
	end := -1
	for n, i := 0, 0; n < m.levels; n++ {
		j := strings.IndexByte(topic[i:], '/')
		if j < 0 {
			return "", "", fmt.Errorf("%w: %q has fewer than %d levels", ErrUnmapped, topic, m.levels+1)
		}
		end = i + j
		i = end + 1
	}
	stream = topic[:end]
	if m.levels > 1 {
		stream = strings.ReplaceAll(stream, "/", ".")
	}
	if err := ValidStream(stream); err != nil {
		return "", "", fmt.Errorf("%w: %q: %v", ErrUnmapped, topic, err)
	}
	device = topic[end+1:]
	if k := strings.IndexByte(device, '/'); k >= 0 {
		device = device[:k]
	}
	if device == "" {
		return "", "", fmt.Errorf("%w: %q has an empty device level", ErrUnmapped, topic)
	}
	return stream, device, nil
}

// DeviceOf returns the device an MQTT topic names, or "" if it names none
// (the ACL uses it to keep a device under its own prefix).
func (m *Mapper) DeviceOf(topic string) string {
	_, d, err := m.Map(topic)
	if err != nil {
		return ""
	}
	return d
}

// ValidStream checks a stream name against Kafka's topic name rules.
func ValidStream(s string) error {
	if s == "" || s == "." || s == ".." {
		return fmt.Errorf("stream name %q is not allowed", s)
	}
	if len(s) > 249 {
		return fmt.Errorf("stream name longer than 249 bytes")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("stream name %q holds %q; allowed are [a-zA-Z0-9._-]", s, c)
		}
	}
	return nil
}

// Partition picks the partition for key among n the way Kafka's default
// partitioner does (murmur2 of the key, sign bit cleared, modulo n), so a
// device lands in the same partition number here, on the core, and in any
// Kafka client that re-keys the stream.
func Partition(key []byte, n int32) int32 {
	if n <= 1 {
		return 0
	}
	return int32(uint32(murmur2(key))&0x7fffffff) % n
}

// murmur2 is Kafka's Utils.murmur2 (Java's >>> becomes a shift of uint32).
func murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// Levels is how many leading topic levels name the stream.
func (m *Mapper) Levels() int { return m.levels }
