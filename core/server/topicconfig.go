package server

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage"
)

// topicConfig maps one Kafka topic config name onto storage.LogConfig.
type topicConfig struct {
	name string
	typ  kmsg.ConfigType
	get  func(c storage.LogConfig) string
	set  func(c *storage.LogConfig, v string) error
}

func parseInt(v string, min int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not an integer: %q", v)
	}
	if n < min {
		return 0, fmt.Errorf("%d is below %d", n, min)
	}
	return n, nil
}

// parseInt32 is parseInt for a config Kafka types INT: it must fit 32 bits.
func parseInt32(v string, min int64) (int, error) {
	n, err := parseInt(v, min)
	if err == nil && n > math.MaxInt32 {
		err = fmt.Errorf("%d is too large", n)
	}
	return int(n), err
}

func msString(d time.Duration) string {
	if d <= 0 {
		return "-1"
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// Kafka's "forever" for retention is -1; storage reads any value <= 0 as
// "keep all", and a non-zero value keeps the broker default from applying.
func setForever(v string) (int64, error) {
	n, err := parseInt(v, -1)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("0 would delete everything at once")
	}
	return n, nil
}

// topicConfigs are the configs DescribeConfigs reports and CreateTopics accepts.
var topicConfigs = []topicConfig{
	{"cleanup.policy", kmsg.ConfigTypeList,
		func(c storage.LogConfig) string { return string(c.Cleanup) },
		func(c *storage.LogConfig, v string) error {
			switch v {
			case "delete":
				c.Cleanup = storage.CleanupDelete
			case "compact", "compact,delete", "delete,compact":
				// Compaction plus retention: storage compacts; retention
				// bounds still apply where set.
				c.Cleanup = storage.CleanupCompact
			default:
				return fmt.Errorf("want delete or compact, got %q", v)
			}
			return nil
		}},
	msConfig("retention.ms", func(c *storage.LogConfig) *time.Duration { return &c.RetentionAge }, msString, parseForeverMs),
	{"retention.bytes", kmsg.ConfigTypeLong,
		func(c storage.LogConfig) string {
			if c.RetentionBytes <= 0 {
				return "-1"
			}
			return strconv.FormatInt(c.RetentionBytes, 10)
		},
		func(c *storage.LogConfig, v string) error {
			n, err := setForever(v)
			c.RetentionBytes = n
			return err
		}},
	{"segment.bytes", kmsg.ConfigTypeInt,
		func(c storage.LogConfig) string { return strconv.FormatInt(c.SegmentBytes, 10) },
		func(c *storage.LogConfig, v string) error {
			n, err := parseInt(v, 1024)
			c.SegmentBytes = n
			return err
		}},
	// 0 (unset) shows as Long.MAX_VALUE: never rolled by age.
	msConfig("segment.ms", func(c *storage.LogConfig) *time.Duration { return &c.SegmentAge }, maxMs, parseMs),
	intConfig("max.message.bytes", func(c *storage.LogConfig) *int { return &c.MaxBatchBytes }),
	msConfig("delete.retention.ms", func(c *storage.LogConfig) *time.Duration { return &c.TombstoneRetention }, msString, parseMs),
	intConfig("index.interval.bytes", func(c *storage.LogConfig) *int { return &c.IndexIntervalBytes }),
	{"flush.ms", kmsg.ConfigTypeLong,
		// 0 fsyncs every batch; n fsyncs at most every n ms (acks=all
		// still waits for its fsync either way).
		func(c storage.LogConfig) string {
			switch c.Durability.Mode {
			case storage.SyncAlways:
				return "0"
			case storage.SyncInterval:
				return msString(c.Durability.Interval)
			default:
				return strconv.FormatInt(math.MaxInt64, 10)
			}
		},
		func(c *storage.LogConfig, v string) error {
			n, err := parseInt(v, 0)
			if n == 0 {
				c.Durability.Mode = storage.SyncAlways
			} else {
				c.Durability.Mode = storage.SyncInterval
				c.Durability.Interval = msDuration(n)
			}
			return err
		}},
	{"message.timestamp.type", kmsg.ConfigTypeString,
		func(c storage.LogConfig) string { return string(c.TimestampType) },
		func(c *storage.LogConfig, v string) error {
			switch storage.TimestampType(v) {
			case storage.CreateTime, storage.LogAppendTime:
				c.TimestampType = storage.TimestampType(v)
				return nil
			}
			return fmt.Errorf("want CreateTime or LogAppendTime, got %q", v)
		}},
	msConfig("message.timestamp.before.max.ms", func(c *storage.LogConfig) *time.Duration { return &c.TimestampBeforeMax }, maxMs, setMaxMs),
	msConfig("message.timestamp.after.max.ms", func(c *storage.LogConfig) *time.Duration { return &c.TimestampAfterMax }, maxMs, setMaxMs),
	{"compression.type", kmsg.ConfigTypeString,
		func(c storage.LogConfig) string {
			if c.Compression == "" {
				return "producer"
			}
			return c.Compression
		},
		func(c *storage.LogConfig, v string) error {
			probe := storage.LogConfig{Compression: v}
			if err := probe.Validate(); err != nil {
				return err
			}
			c.Compression = v
			return nil
		}},
	{"min.insync.replicas", kmsg.ConfigTypeInt,
		func(storage.LogConfig) string { return "1" },
		fixedValue("1")},
}

// msConfig is a LONG config in ms kept in the duration field returns: show
// formats the field's value, parse reads a new one.
func msConfig(name string, field func(*storage.LogConfig) *time.Duration,
	show func(time.Duration) string, parse func(string) (time.Duration, error)) topicConfig {
	return topicConfig{name, kmsg.ConfigTypeLong,
		func(c storage.LogConfig) string { return show(*field(&c)) },
		func(c *storage.LogConfig, v string) error {
			d, err := parse(v)
			*field(c) = d
			return err
		}}
}

// intConfig is an INT config of at least 1 kept in the int field returns.
func intConfig(name string, field func(*storage.LogConfig) *int) topicConfig {
	return topicConfig{name, kmsg.ConfigTypeInt,
		func(c storage.LogConfig) string { return strconv.Itoa(*field(&c)) },
		func(c *storage.LogConfig, v string) error {
			n, err := parseInt32(v, 1)
			*field(c) = n
			return err
		}}
}

// parseMs reads a positive count of ms.
func parseMs(v string) (time.Duration, error) {
	n, err := parseInt(v, 1)
	return msDuration(n), err
}

// parseForeverMs reads a retention in ms, where -1 is forever (setForever).
func parseForeverMs(v string) (time.Duration, error) {
	n, err := setForever(v)
	return msDuration(n), err
}

// maxMs shows a timestamp bound or segment age; Kafka's "no bound" is
// Long.MAX_VALUE.
func maxMs(d time.Duration) string {
	if d <= 0 {
		return strconv.FormatInt(math.MaxInt64, 10)
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// msDuration is n ms as a duration; a count too large for one (up to
// Long.MAX_VALUE, which Kafka tools send for "never") saturates at the
// longest duration instead of wrapping negative.
func msDuration(n int64) time.Duration {
	if n > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(n) * time.Millisecond
}

// setMaxMs reads a timestamp bound in ms; values too large for a duration
// (Long.MAX_VALUE included) mean no bound.
func setMaxMs(v string) (time.Duration, error) {
	n, err := parseInt(v, 1)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64/int64(time.Millisecond) {
		return 0, nil
	}
	return time.Duration(n) * time.Millisecond, nil
}

// fixedValue accepts a config only at the one value this broker implements.
func fixedValue(want string) func(*storage.LogConfig, string) error {
	return func(_ *storage.LogConfig, v string) error {
		if v != want {
			return fmt.Errorf("only %q is supported", want)
		}
		return nil
	}
}

func findTopicConfig(name string) (topicConfig, bool) {
	for _, tc := range topicConfigs {
		if tc.name == name {
			return tc, true
		}
	}
	return topicConfig{}, false
}

// parseTopicConfigs turns CreateTopics configs into a LogConfig whose unset
// fields stay zero (so the broker defaults apply).
func parseTopicConfigs(cfgs []kmsg.CreateTopicsRequestTopicConfig) (storage.LogConfig, error) {
	var lc storage.LogConfig
	for _, kv := range cfgs {
		tc, ok := findTopicConfig(kv.Name)
		if !ok {
			return lc, fmt.Errorf("unknown or unsupported config %q", kv.Name)
		}
		if kv.Value == nil {
			continue // null: keep the default
		}
		if err := tc.set(&lc, *kv.Value); err != nil {
			return lc, fmt.Errorf("config %s: %w", kv.Name, err)
		}
	}
	if err := lc.Validate(); err != nil {
		return lc, fmt.Errorf("topic config: %w", err)
	}
	return lc, nil
}
