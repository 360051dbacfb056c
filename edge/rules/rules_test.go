package rules

import (
	"errors"
	"strings"
	"testing"
)

func mustCompile(t testing.TB, cfgs ...Config) *Set {
	t.Helper()
	s, err := Compile(cfgs, 1, JSONSchema)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMatchAndRender(t *testing.T) {
	t.Parallel()
	s := mustCompile(t,
		Config{Name: "tasmota", Match: "tele/{device}/SENSOR", Stream: "tasmota"},
		Config{Name: "z2m", Match: "zigbee2mqtt/{device}", Stream: "zigbee2mqtt"},
		Config{Name: "shelly", Match: "shellies/{device}/{+rest}", Stream: "shelly.{rest}", Headers: map[string]string{"ch": "{rest}", "fixed": "x"}},
		Config{Name: "spb", Match: "spBv1.0/{group}/{type}/{node}/{device?}", Stream: "plant.{group}", Key: "{node}", DeadLetter: "plant.{group}.bad"},
		Config{Name: "wild", Match: "a/+/b/#", Stream: "wild", Key: "k"},
	)
	cases := []struct {
		topic, rule, stream, key, device string
	}{
		{"tele/plug-1/SENSOR", "tasmota", "tasmota", "plug-1", "plug-1"},
		{"zigbee2mqtt/living", "z2m", "zigbee2mqtt", "living", "living"},
		{"shellies/s1/relay/0/power", "shelly", "shelly.relay.0.power", "s1", "s1"},
		{"spBv1.0/g1/NDATA/n1", "spb", "plant.g1", "n1", "n1"},
		{"spBv1.0/g1/DDATA/n1/d1", "spb", "plant.g1", "n1", "d1"},
		{"a/x/b", "wild", "wild", "k", "k"},
		{"a/x/b/c/d", "wild", "wild", "k", "k"},
		{"sensors/dev-1/reading", "default", "sensors", "dev-1", "dev-1"},
		{"sensors/dev-1", "default", "sensors", "dev-1", "dev-1"},
		{"tele/plug-1/STATE", "default", "tele", "plug-1", "plug-1"},
	}
	for _, c := range cases {
		var caps Captures
		r := s.Match(c.topic, &caps)
		if r == nil {
			t.Fatalf("%s: no match", c.topic)
		}
		dev := r.Device(&caps)
		if dev == "" {
			dev = r.Key(&caps)
		}
		if r.Name != c.rule || r.Stream(&caps) != c.stream || r.Key(&caps) != c.key || dev != c.device {
			t.Errorf("%s: rule %s stream %s key %s device %s, want %+v", c.topic, r.Name, r.Stream(&caps), r.Key(&caps), dev, c)
		}
	}
	var caps Captures
	r := s.Match("shellies/s1/relay/0", &caps)
	got := map[string]string{}
	r.Headers(&caps, func(k, v string) { got[k] = v })
	if got["ch"] != "relay/0" || got["fixed"] != "x" {
		t.Errorf("headers %v", got)
	}
	r = s.Match("spBv1.0/g1/NBIRTH/n1", &caps)
	if r.DeadLetter(&caps) != "plant.g1.bad" || r.Capture(&caps, "device") != "" || r.Capture(&caps, "type") != "NBIRTH" {
		t.Errorf("spb captures: dlq %q device %q", r.DeadLetter(&caps), r.Capture(&caps, "device"))
	}
	for _, miss := range []string{"loose", "tele//SENSOR", "zigbee2mqtt/", "/x", "$SYS/broker/x", "spBv1.0/g1/NDATA/n1/d1/extra/x"} {
		if r := s.Match(miss, &caps); r != nil && r.Name != "default" {
			t.Errorf("%q matched %s", miss, r.Name)
		} else if r != nil && (miss == "loose" || miss == "/x") {
			t.Errorf("%q matched the default rule", miss)
		}
	}
}

func TestMatchAllocatesNothing(t *testing.T) {
	s := mustCompile(t, Config{Name: "tasmota", Match: "tele/{device}/SENSOR", Stream: "tasmota"})
	var caps Captures
	n := testing.AllocsPerRun(1000, func() {
		r := s.Match("sensors/dev-000042/reading", &caps)
		_ = r.Stream(&caps)
		_ = r.Key(&caps)
		r = s.Match("tele/plug-1/SENSOR", &caps)
		_ = r.Stream(&caps)
		_ = r.Key(&caps)
	})
	if n != 0 {
		t.Fatalf("%v allocations per match and render", n)
	}
}

// TestConfigErrors: each mistake fails with the rule's name and the field.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		c    Config
		want string
	}{
		{Config{Name: "a", Stream: "s"}, `rule "a" (#1): match: missing`},
		{Config{Name: "a", Match: "x/#/y", Stream: "s", Key: "k"}, `rule "a" (#1): match: filter "x/#/y": # must be the last level`},
		{Config{Name: "a", Match: "x/{+r}/y", Stream: "s", Key: "k"}, "must be the last level"},
		{Config{Name: "a", Match: "x/{a b}", Stream: "s", Key: "k"}, "capture name"},
		{Config{Name: "a", Match: "x/a{b}", Stream: "s", Key: "k"}, "mixes text"},
		{Config{Name: "a", Match: "x/{d}/{d}", Stream: "s", Key: "k"}, "defined twice"},
		{Config{Name: "b", Match: "x/{device}", Stream: "s.{group}"}, `rule "b" (#1): stream: template "s.{group}": capture {group} is not defined by the filter (it defines {device})`},
		{Config{Name: "b", Match: "x/{id}", Stream: "s"}, `rule "b" (#1): key: missing`},
		{Config{Name: "b", Match: "x/{device}", Stream: "bad stream"}, `stream: stream name "bad stream"`},
		{Config{Name: "b", Match: "x/{device}", Stream: "s", Headers: map[string]string{"h": "{nope}"}}, "headers.h: template"},
		{Config{Name: "c", Match: "x/{device}", Stream: "s", Format: "xml"}, `rule "c" (#1): format: unknown format "xml"`},
		{Config{Name: "c", Match: "x/{device}", Stream: "s", Format: "text", Seq: "/seq"}, "format text has no fields"},
		{Config{Name: "c", Match: "x/{device}", Stream: "s", Time: TimeConfig{Field: "Time"}}, "time: field \"Time\""},
		{Config{Name: "c", Match: "x/{device}", Stream: "s", Time: TimeConfig{Field: "/t", Zone: "Mars/Olympus"}}, "time: zone"},
		{Config{Name: "c", Match: "x/{device}", Stream: "s", Time: TimeConfig{OutOfWindow: "drop"}}, "out_of_window"},
		{Config{Name: "d", Match: "x/{device}", Stream: "s", Schema: `{"type": 5}`}, `rule "d" (#1): schema: compile schema`},
		{Config{Name: "d", Match: "x/{device}", Stream: "s", Schema: `{`}, `rule "d" (#1): schema: parse schema`},
		{Config{Name: "d", Match: "x/{device}", Stream: "s", Decode: true}, "decode: only for format sparkplug-b"},
		{Config{Name: "d", Match: "x/{device}", Stream: "s", DeadLetter: "{x}"}, "dead_letter"},
	}
	for _, c := range cases {
		_, err := Compile([]Config{c.c}, 1, JSONSchema)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.c, err, c.want)
		}
	}
	if _, err := Compile([]Config{{Match: "a/{device}", Stream: "s"}, {Match: "b/{device}", Stream: "s", Format: "?"}}, 1, JSONSchema); err == nil ||
		!strings.Contains(err.Error(), `rule "rule-2" (#2): format`) {
		t.Errorf("unnamed rule error %v", err)
	}
}

func TestSchema(t *testing.T) {
	t.Parallel()
	v, err := JSONSchema("t", `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["temperature"],
		"properties":{"temperature":{"type":"number","maximum":100}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(map[string]any{"temperature": 21.5}); err != nil {
		t.Fatalf("valid document refused: %v", err)
	}
	err = v.Validate(map[string]any{"temperature": 120.0})
	if err == nil || !strings.Contains(err.Error(), "maximum") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("invalid document: %v", err)
	}
	if err := v.Validate(map[string]any{}); err == nil || !strings.Contains(err.Error(), "temperature") {
		t.Fatalf("missing property: %v", err)
	}
	_ = errors.New
}

func TestMayWriteStream(t *testing.T) {
	t.Parallel()
	s := mustCompile(t, Config{Name: "spb", Match: "spBv1.0/{group}/{type}/{node}/{device?}", Stream: "plant.{group}", Key: "{node}"},
		Config{Name: "lit", Match: "x/{device}", Stream: "tasmota"},
		Config{Name: "two", Match: "y/{a}/{b}", Stream: "{a}-{b}.raw", Key: "k"})
	r := s.Rules()
	for _, c := range []struct {
		rule   int
		stream string
		want   bool
	}{
		{0, "plant.g1", true}, {0, "plant.", false}, {0, "plants.g1", false}, {0, "sensors", false},
		{1, "tasmota", true}, {1, "tasmota.status", false},
		{2, "a-b.raw", true}, {2, "a-b-c.raw", true}, {2, "-b.raw", false}, {2, "ab.raw", false},
	} {
		if got := r[c.rule].MayWriteStream(c.stream); got != c.want {
			t.Errorf("rule %s stream %q: %v", r[c.rule].Name, c.stream, got)
		}
	}
}
