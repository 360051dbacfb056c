package main

import (
	"testing"
	"time"

	"github.com/tributary-io/tributary/firmware-sim/verify"
)

func TestParseFrom(t *testing.T) {
	t.Parallel()
	cases := map[string]verify.KafkaOptions{
		"start":                {StartOffset: -2},
		"end":                  {StartOffset: -1},
		"42":                   {StartOffset: 42},
		"1763900000000":        {StartTime: time.UnixMilli(1763900000000)},
		"2026-11-23T12:00:00Z": {StartTime: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)},
	}
	for in, want := range cases {
		var got verify.KafkaOptions
		if err := parseFrom(in, &got); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got.StartOffset != want.StartOffset || !got.StartTime.Equal(want.StartTime) {
			t.Errorf("%s: got offset %d time %v", in, got.StartOffset, got.StartTime)
		}
	}
	for _, bad := range []string{"-5", "soon", "12:00"} {
		if err := parseFrom(bad, &verify.KafkaOptions{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
