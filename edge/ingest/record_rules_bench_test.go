package ingest

import (
	"fmt"
	"time"

	"github.com/tributary-io/tributary/edge/rules"
)

func extraRecordCases() []struct {
	name  string
	cfg   Config
	topic string
	p     []byte
} {
	p := []byte(fmt.Sprintf(`{"ts":%d,"temperature":21.5,"humidity":40.25,"battery":97,"linkquality":120,"x":"pad"}`, time.Now().UnixMilli()))
	return []struct {
		name  string
		cfg   Config
		topic string
		p     []byte
	}{{"json-100B-rule-key-time", Config{Rules: []rules.Config{{Name: "z", Match: "zigbee2mqtt/{device}", Stream: "z2m", Format: "json",
		Time: rules.TimeConfig{Field: "/ts", Unit: "ms"}}}}, "zigbee2mqtt/living_room", p}}
}
