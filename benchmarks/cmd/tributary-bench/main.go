// Command tributary-bench runs Tributary's side-by-side benchmarks and writes
// a Markdown table (benchmarks/RESULTS.md by default). Each comparison runs
// both sides in the same run on the same machine and reports the ratio.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"
)

type row struct {
	Name   string
	Ours   string
	Peer   string
	Ratio  float64 // ours / peer, higher is better
	Target string
}

var interactive = term.IsTerminal(int(os.Stderr.Fd()))

// progress keeps one live line on a terminal.
func progress(what string, done, total int) {
	if !interactive || what == "" || (done%64 != 0 && done != total) {
		return
	}
	fmt.Fprintf(os.Stderr, "\r%-40s %3d%%", what, done*100/total)
	if done == total {
		fmt.Fprintln(os.Stderr)
	}
}

func main() {
	out := flag.String("out", "benchmarks/RESULTS.md", "where to write the Markdown results")
	quick := flag.Bool("quick", false, "smaller runs (under 3 minutes)")
	dir := flag.String("dir", os.TempDir(), "scratch directory on the disk to measure")
	only := flag.String("only", "", "comma-separated sections to run (storage, core, txn, edge, ingest, e2e, drain, cluster, stream, security); empty runs all")
	bareMochi := flag.String("serve-bare-mochi", "", "internal: serve bare mochi-mqtt on MQTT_ADDR,HTTP_ADDR (the edge section's RSS floor)")
	flag.Parse()
	if *bareMochi != "" {
		mqttAddr, httpAddr, _ := strings.Cut(*bareMochi, ",")
		if err := serveBareMochi(mqttAddr, httpAddr); err != nil {
			fmt.Fprintln(os.Stderr, "bare mochi:", err)
			os.Exit(1)
		}
		return
	}
	// The e2e, drain and cluster sections run tributary daemons in their
	// own process groups; an interrupt kills them before the harness exits.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "\n%v: stopping child processes\n", sig)
		killChildren()
		removeScratch()
		removeBuilt()
		os.Exit(130)
	}()
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}

	mib := 1024
	if *quick {
		mib = 256
	}
	var rows []row
	run := func(section, name string, fn func() ([]row, error)) {
		if len(want) > 0 && !want[section] {
			return
		}
		if section == "txn" && !want[section] {
			return // its rows are part of the core section; alone only when asked
		}
		fmt.Fprintf(os.Stderr, "== %s\n", name)
		start := time.Now()
		r, err := fn()
		if err != nil {
			fmt.Fprintf(os.Stderr, "   %s failed: %v\n", name, err)
			// One table cell: a build error or a log tail spans lines.
			msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "|", "/")), " ")
			rows = append(rows, row{Name: name, Ours: "failed: " + msg})
			return
		}
		fmt.Fprintf(os.Stderr, "   done in %s\n", time.Since(start).Round(time.Second))
		rows = append(rows, r...)
	}
	run("storage", "storage vs dd", func() ([]row, error) { return storageVsDD(*dir, mib) })
	run("core", "core vs kfake vs JetStream", func() ([]row, error) { return coreVsPeers(*dir, *quick) })
	run("txn", "transactional vs idempotent produce (also in core)", func() ([]row, error) { return txnSection(*dir, *quick) })
	run("security", "core over TLS vs plaintext; SCRAM logins", func() ([]row, error) { return securityBench(*dir, *quick) })
	run("edge", "edge vs mosquitto", func() ([]row, error) { return edgeVsMosquitto(*dir, *quick) })
	run("ingest", "edge ingest rules: generic JSON, Sparkplug B", func() ([]row, error) { return ingestFormats(*dir, *quick) })
	run("e2e", "end-to-end latency (sensor → edge → core → consumer)", func() ([]row, error) { return endToEnd(*dir, *quick) })
	run("drain", "bridge backlog drain", func() ([]row, error) { return bridgeDrain(*dir, *quick) })
	run("cluster", "core cluster: RF=3 cost and failover", func() ([]row, error) { return clusterBench(*dir, *quick) })
	run("stream", "aggregated streams: engine and consume + aggregate", func() ([]row, error) { return streamVsConsume(*dir, *quick) })
	removeBuilt()

	md := render(rows, *dir)
	fmt.Print(md)
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "write results:", err)
		os.Exit(1)
	}
}

func render(rows []row, dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmark results\n\nMachine: %d cores (%s/%s), %s, scratch disk: %s\nRun: %s\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cpuModel(), diskOf(dir), time.Now().UTC().Format(time.RFC3339))
	b.WriteString("| benchmark | Tributary | peer | ratio | target |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		ratio := ""
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.Name, r.Ours, r.Peer, ratio, r.Target)
	}
	return b.String()
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown cpu"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "model name") {
			if i := strings.Index(line, ":"); i >= 0 {
				return strings.TrimSpace(line[i+1:])
			}
		}
	}
	return "unknown cpu"
}

func diskOf(dir string) string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return dir
	}
	best, dev := "", ""
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		mnt := f[4]
		if strings.HasPrefix(dir, mnt) && len(mnt) > len(best) {
			best = mnt
			for i, x := range f {
				if x == "-" && i+2 < len(f) {
					dev = f[i+1] + " " + f[i+2]
				}
			}
		}
	}
	return fmt.Sprintf("%s (%s)", dir, dev)
}
