package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tributary-io/tributary/storage/meta"
)

// Every common start-up mistake ends run with one error line that says
// what to fix — never a panic (before, a port in use crashed the edge with
// a nil-pointer dereference in Gateway.closeStorage).
func TestStartupMistakes(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	typo := write("typo.yaml", "mqtt:\n  adress: 127.0.0.1:1\n")
	dur := write("dur.yaml", "maintain_interval: 10\n")
	agg := func(name, window string) string {
		return write(name, "aggregations:\n  - name: 1m\n    source: sensors\n    fields: [{name: temp, path: temp}]\n"+
			"    window: "+window+"\n    aggregates: [count, mean]\n")
	}
	advance := agg("advance.yaml", "{type: hopping, size: 1m, advance: 2m}")
	aggTypo := agg("aggtypo.yaml", "{type: tumbling, sise: 1m}")
	forward := write("forward.yaml", "ingest:\n  streams:\n    sensors: {forward: none}\n")

	// A second edge on the data dir of a running one: its metadata file
	// is locked.
	held := filepath.Join(dir, "held")
	if err := os.MkdirAll(held, 0o755); err != nil {
		t.Fatal(err)
	}
	holder, err := meta.Open(filepath.Join(held, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()

	data := func() string { return filepath.Join(t.TempDir(), "data") }
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"mqtt port in use":    {[]string{"-data-dir", data(), "-mqtt-addr", busy.Addr().String(), "-http-addr", "-"}, "mqtt listen"},
		"http port in use":    {[]string{"-data-dir", data(), "-mqtt-addr", "127.0.0.1:0", "-http-addr", busy.Addr().String()}, "http listen"},
		"port without host":   {[]string{"-data-dir", data(), "-mqtt-addr", "1883x", "-http-addr", "-"}, "mqtt"},
		"data dir in use":     {[]string{"-data-dir", held, "-mqtt-addr", "127.0.0.1:0", "-http-addr", "-"}, "is locked by another process (another daemon is using this data directory"},
		"data dir is a file":  {[]string{"-data-dir", filepath.Join(file, "data"), "-mqtt-addr", "127.0.0.1:0", "-http-addr", "-"}, "data dir"},
		"stray argument":      {[]string{"edge.yaml", "-data-dir", "X"}, `unexpected arguments ["edge.yaml" "-data-dir" "X"] (give a config file as -config edge.yaml`},
		"misspelt key":        {[]string{"-config", typo}, "mqtt.adress (line 2): unknown key; did you mean address?"},
		"number for duration": {[]string{"-config", dur}, "maintain_interval (line 1): want a duration like 10s"},
		"aggregation advance": {[]string{"-config", advance, "-data-dir", data()}, "aggregations[0].window.advance: 2m0s exceeds the window size 1m0s"},
		"aggregation typo":    {[]string{"-config", aggTypo}, "sise"},
		"forward value":       {[]string{"-config", forward, "-data-dir", data()}, `streams.sensors.forward: "none": want all or aggregates-only`},
		"log level":           {[]string{"-log-level", "verbose"}, `log level "verbose": want debug, info, warn or error`},
		"log format":          {[]string{"-log-format", "xml"}, `log format "xml": want text or json`},
	} {
		var stdout, stderr bytes.Buffer
		err := run(tc.args, &stdout, &stderr)
		if err == nil {
			t.Errorf("%s: started", name)
			continue
		}
		if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want one line saying %q", name, err, tc.want)
		}
		if strings.Contains(stderr.String(), "panic") {
			t.Errorf("%s: panicked:\n%s", name, stderr.String())
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-version"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if out := stdout.String(); !strings.HasPrefix(out, "tributary-edge ") || !strings.Contains(out, "go1.") || !strings.Contains(out, "commit ") {
		t.Fatalf("-version printed %q", out)
	}
}
