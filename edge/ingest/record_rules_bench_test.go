package ingest

import (
	"fmt"
	"time"

	"github.com/tributary-io/tributary/edge/rules"
	"github.com/tributary-io/tributary/edge/sparkplug"
)

func extraRecordCases() []struct {
	name  string
	cfg   Config
	topic string
	p     []byte
} {
	p := []byte(fmt.Sprintf(`{"ts":%d,"temperature":21.5,"humidity":40.25,"battery":97,"linkquality":120,"x":"pad"}`, time.Now().UnixMilli()))
	last := []byte(fmt.Sprintf(`{"temperature":21.5,"humidity":40.25,"battery":97,"linkquality":120,"x":"pad","ts":%d}`, time.Now().UnixMilli()))
	z2m := Config{Rules: []rules.Config{{Name: "z", Match: "zigbee2mqtt/{device}", Stream: "z2m", Format: "json",
		Time: rules.TimeConfig{Field: "/ts", Unit: "ms"}}}}
	return []struct {
		name  string
		cfg   Config
		topic string
		p     []byte
	}{{"json-100B-rule-key-time", z2m, "zigbee2mqtt/living_room", p},
		{"json-100B-rule-key-time-last", z2m, "zigbee2mqtt/living_room", last}}
}

// sparkplugRecordCases: an NDATA of 10 metrics by alias after its NBIRTH.
func sparkplugRecordCases(decode bool) (cfg Config, birthTopic string, birth []byte, topic string, data [256][]byte) {
	b := sparkplug.NewBuilder("bench", "node-1", 0)
	var ms, as []*sparkplug.Payload_Metric
	for a := uint64(1); a <= 10; a++ {
		m := sparkplug.MustMetric(fmt.Sprintf("sensor/%d", a), sparkplug.DataType_Double, float64(a))
		m.SetAlias(a)
		ms = append(ms, m)
		d, _ := sparkplug.AliasMetric(a, sparkplug.DataType_Unknown, float64(a)+0.5)
		as = append(as, d)
	}
	birthTopic, birth, _ = b.NBirth(ms...)
	for i := range data { // seq 1..255, 0: consecutive when cycled
		topic, data[i], _ = b.NData(as...)
	}
	cfg = Config{Rules: []rules.Config{{Name: "spb", Match: "spBv1.0/{group}/{type}/{node}/{device?}", Stream: "plant", Key: "{node}",
		Format: "sparkplug-b", Decode: decode}}}
	return
}
