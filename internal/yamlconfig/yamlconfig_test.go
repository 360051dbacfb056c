package yamlconfig

import (
	"strings"
	"testing"
	"time"
)

type inner struct {
	Address string        `yaml:"address"`
	Timeout time.Duration `yaml:"timeout"`
	Count   int           `yaml:"count"`
}

type root struct {
	DataDir string   `yaml:"data_dir"`
	MQTT    inner    `yaml:"mqtt"`
	Brokers []string `yaml:"brokers"`
	Debug   bool     `yaml:"debug"`
}

func TestErrorsNameKeyLineAndForm(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		yaml string
		want []string
	}{
		"typo":         {"data_dir: x\nmqtt:\n  adress: 1\n", []string{"config c.yaml: mqtt.adress (line 3): unknown key; did you mean address?"}},
		"unknown top":  {"zzzzzzzzzz: 1\n", []string{"zzzzzzzzzz (line 1): unknown key; valid keys here: brokers, data_dir, debug, mqtt"}},
		"duration":     {"mqtt:\n  timeout: 10\n", []string{"mqtt.timeout (line 2): want a duration like 10s, 500ms or 1h30m, got 10"}},
		"bad duration": {"mqtt:\n  timeout: 10 seconds\n", []string{"mqtt.timeout (line 2): want a duration", "got 10 seconds"}},
		"int":          {"mqtt:\n  count: many\n", []string{"mqtt.count (line 2): want a whole number, got many"}},
		"bool":         {"debug: sometimes\n", []string{"debug (line 1): want true or false, got sometimes"}},
		"list":         {"brokers: a\n", []string{"brokers (line 1): want a list, got a"}},
		"two errors":   {"mqtt:\n  adress: 1\n  count: x\n", []string{"did you mean address?", "; mqtt.count (line 3): want a whole number"}},
		"syntax":       {"mqtt: [\n", []string{"config c.yaml: line"}},
	} {
		var r root
		err := Decode("c.yaml", []byte(tc.yaml), &r)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", name, err, w)
			}
		}
	}
	var r root
	if err := Decode("c.yaml", []byte("mqtt:\n  address: a\n  timeout: 2s\n"), &r); err != nil || r.MQTT.Timeout != 2*time.Second {
		t.Fatalf("valid config: %v %+v", err, r)
	}
	if err := Decode("c.yaml", nil, &r); err != nil {
		t.Fatalf("empty config: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("mqtt:\n  adress: 1\n")
	f.Add("data_dir: [x\n")
	f.Fuzz(func(t *testing.T, s string) {
		var r root
		_ = Decode("f.yaml", []byte(s), &r) // never panics
	})
}
