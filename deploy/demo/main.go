// Command demo is what `make demo` runs after `make build`: it starts, on
// loopback and with data under ./data/demo, a Tributary core, two edges
// bridged to it, a simulated fleet of sensors per edge, and a consumer group
// reading the core, and draws a live view of the data moving through them.
// Ctrl-C stops the fleets, then the edges, then the core, and removes
// nothing: a second run continues where the first stopped. Each child's
// output goes to ./data/demo/logs/<name>.log, not to the terminal.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"gopkg.in/yaml.v3"

	"github.com/tributary-io/tributary/internal/tick"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type options struct {
	bin, data, encoding, group string
	brokers, edges, devices    int
	showDevices, portOffset    int
	secure                     bool
	rate                       float64
	refresh                    time.Duration
}

// Ports before -port-offset: the core's are the daemons' own defaults, so
// `kcat -b 127.0.0.1:9092` works; edges and fleets count up from theirs.
const (
	kafkaPort    = 9092 // +broker
	coreHTTPPort = 9644 // +broker
	serfPort     = 7946 // +broker, cluster gossip
	raftPort     = 7956 // +broker
	rpcPort      = 7966 // +broker
	mqttPort     = 1883 // +edge
	edgeHTTPPort = 9654 // +edge
	simHTTPPort  = 9664 // +edge
)

// How long each tier gets to stop gracefully before it is killed. The fleets
// drain their in-flight publishes (--drain-timeout 5s) first.
const (
	startTimeout = 30 * time.Second
	simStop      = 15 * time.Second
	edgeStop     = 20 * time.Second
	coreStop     = 20 * time.Second
	// A second interrupt sooner than this is taken as a duplicate of the first.
	signalDebounce = 500 * time.Millisecond
)

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: go run ./deploy/demo [flags]   (make demo builds the binaries first)

Starts a Tributary core, edges bridged to it and a simulated sensor fleet per
edge on loopback, with all data under -data, and shows the data moving through
them. Ctrl-C stops everything in order (a second Ctrl-C kills); nothing is
removed, so the next run continues. Child output: <data>/logs/<name>.log.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.bin, "bin", "bin", "directory holding tributary-core, tributary-edge and tributary-sim")
	fs.StringVar(&o.data, "data", filepath.Join("data", "demo"), "data directory for every daemon and the logs")
	fs.IntVar(&o.brokers, "brokers", 3, "core brokers: 1 runs a single-node core, more form a cluster")
	fs.IntVar(&o.edges, "edges", 2, "edge gateways")
	fs.IntVar(&o.devices, "devices", 200, "simulated devices per edge")
	fs.Float64Var(&o.rate, "rate", 1, "readings per second per device")
	fs.StringVar(&o.encoding, "encoding", "cbor", "payload encoding of the fleets: cbor, json, senml-cbor or senml-json")
	fs.IntVar(&o.showDevices, "show-devices", 3, "devices per edge whose latest reading is shown")
	fs.IntVar(&o.portOffset, "port-offset", 0, "added to every port (to run beside daemons already on the defaults)")
	fs.StringVar(&o.group, "group", "tributary-demo", "consumer group of the live view")
	fs.DurationVar(&o.refresh, "refresh", time.Second, "how often the view is redrawn")
	fs.BoolVar(&o.secure, "secure", false, "TLS on every link and SCRAM on Kafka; writes <data>/client.properties for kcat -F")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.brokers < 1 || o.brokers > 5:
		return o, errors.New("-brokers: 1 to 5")
	case o.edges < 1 || o.edges > 9:
		return o, errors.New("-edges: 1 to 9")
	case o.devices < 1:
		return o, errors.New("-devices: at least 1")
	case o.rate <= 0:
		return o, errors.New("-rate: must be positive")
	case o.refresh < 100*time.Millisecond:
		return o, errors.New("-refresh: at least 100ms")
	case o.portOffset < 0 || o.portOffset > 50000:
		return o, errors.New("-port-offset: 0 to 50000")
	}
	return o, nil
}

func addr(port, offset int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port+offset)) }

// demo owns the child processes.
type demo struct {
	o       options
	logDir  string
	log     *slog.Logger
	started time.Time

	mu                sync.Mutex
	cores, edges, sim []*proc

	brokerAddrs []string
	// bridgeOff says why edges run without their bridge ("" if bridged).
	bridgeOff string
	// sec is set with -secure.
	sec *secureSetup
}

// clientOpts are the Kafka client options of the demo's own clients.
func (d *demo) clientOpts() []kgo.Opt {
	if d.sec == nil {
		return nil
	}
	return d.sec.clientOpts("demo")
}

func run(args []string) error {
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, b := range []string{"tributary-core", "tributary-edge", "tributary-sim"} {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			return fmt.Errorf("%s not found in %s: run `make build` first (or `make demo`)", b, o.bin)
		}
	}
	d := &demo{o: o, logDir: filepath.Join(o.data, "logs"), started: time.Now()}
	if err := os.MkdirAll(d.logDir, 0o755); err != nil {
		return fmt.Errorf("create log dir: %w", err)
	}
	if err := d.checkPorts(); err != nil {
		return err
	}
	lf, err := os.OpenFile(filepath.Join(d.logDir, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open demo log: %w", err)
	}
	defer lf.Close()
	d.log = slog.New(slog.NewTextHandler(lf, nil))

	// The first Ctrl-C (or SIGTERM) cancels ctx and the orderly stop
	// begins; a second one kills every child at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	// Piped into tee or less, Ctrl-C ends the reader too; the next write to
	// the terminal view then fails with EPIPE. Without this, Go would end
	// the demo with SIGPIPE before it stopped its daemons, leaving them
	// running under PID 1.
	signal.Ignore(syscall.SIGPIPE)
	sigDone := make(chan struct{})
	var sigWG sync.WaitGroup
	sigWG.Add(1)
	go func() {
		defer sigWG.Done()
		var first time.Time
		for {
			select {
			case <-sigDone:
				return
			case <-sigs:
				switch {
				case first.IsZero():
					first = time.Now()
					cancel()
				case time.Since(first) < signalDebounce:
					// The same interrupt delivered twice (timeout(1)
					// signals both its child and its process group).
				default:
					fmt.Println("\nsecond interrupt: killing every process")
					d.killAll()
				}
			}
		}
	}()
	defer func() { close(sigDone); sigWG.Wait() }()

	cons, startErr := d.start(ctx)
	if startErr == nil {
		d.watch(ctx, cons)
	}
	fmt.Println()
	failed := d.shutdown(cons)
	if startErr != nil && ctx.Err() == nil {
		return startErr
	}
	if failed > 0 {
		return fmt.Errorf("%d process(es) did not stop cleanly (above); their logs are in %s", failed, d.logDir)
	}
	return nil
}

// checkPorts fails early, with a hint, if a port the demo needs is taken.
func (d *demo) checkPorts() error {
	ports := []int{}
	for b := range d.o.brokers {
		ports = append(ports, kafkaPort+b, coreHTTPPort+b)
		if d.o.brokers > 1 {
			ports = append(ports, serfPort+b, raftPort+b, rpcPort+b)
		}
	}
	for e := range d.o.edges {
		ports = append(ports, mqttPort+e, edgeHTTPPort+e, simHTTPPort+e)
	}
	for _, p := range ports {
		a := addr(p, d.o.portOffset)
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%s is in use (another Tributary running?); stop it or pass -port-offset 100: %w", a, err)
		}
		ln.Close()
	}
	return nil
}

// start brings the tiers up in order, each healthy before the next.
func (d *demo) start(ctx context.Context) (*runningConsumer, error) {
	o := d.o
	fmt.Printf("Tributary demo: data in %s, logs in %s\n", o.data, d.logDir)
	if o.secure {
		var err error
		if d.sec, err = newSecureSetup(o.data); err != nil {
			return nil, err
		}
		fmt.Printf("  secure: dev CA and certificates in %s, SCRAM-SHA-512 on Kafka, TLS on every link\n", d.sec.dir)
	}
	if err := d.startCores(ctx); err != nil {
		return nil, err
	}
	if d.sec != nil {
		props := filepath.Join(o.data, "client.properties")
		if err := d.sec.writeClientProperties(props, d.brokerAddrs); err != nil {
			return nil, err
		}
		fmt.Printf("  client properties for kcat: kcat -F %s -C -t <topic>\n", props)
	}
	for e := range o.edges {
		if err := d.startEdge(ctx, e); err != nil {
			return nil, err
		}
	}
	cons, err := startConsumer(ctx, d.brokerAddrs, o.group, d.log, d.clientOpts()...)
	if err != nil {
		return nil, err
	}
	fmt.Printf("  consumer group %q reading every stream on the core\n", o.group)
	for e := range o.edges {
		name := fmt.Sprintf("sim-%d", e)
		simArgs := []string{"run", "--broker", addr(mqttPort+e, o.portOffset)}
		if d.sec != nil {
			simArgs = append(simArgs, "--tls", "--ca-file", d.sec.caFile)
		}
		p, err := startProc(name, d.logDir, filepath.Join(o.bin, "tributary-sim"), append(simArgs,
			"--devices", strconv.Itoa(o.devices), "--id-start", strconv.Itoa(e*o.devices),
			"--rate", strconv.FormatFloat(o.rate, 'g', -1, 64), "--encoding", o.encoding,
			// Ended by Ctrl-C; --state keeps sequence numbers going across runs.
			"--duration", "8760h", "--ramp", "5s", "--drain-timeout", "5s",
			"--state", filepath.Join(o.data, name+".state"),
			"--metrics-addr", addr(simHTTPPort+e, o.portOffset), "--quiet")...)
		if err != nil {
			return cons, err
		}
		d.add(&d.sim, p)
		fmt.Printf("  %-8s %d devices at %g readings/s each (%s)\n", name, o.devices, o.rate, o.encoding)
	}
	d.log.Info("demo started", "brokers", d.brokerAddrs, "edges", o.edges, "devices_per_edge", o.devices, "bridge_off", d.bridgeOff)
	return cons, nil
}

// startCores starts the brokers: one is a single-node core; more form a
// cluster (Serf gossip, Raft metadata, replicated partitions) whose members
// all find each other through the same -join list.
func (d *demo) startCores(ctx context.Context) error {
	o := d.o
	var join []string
	for b := range o.brokers {
		join = append(join, addr(serfPort+b, o.portOffset))
	}
	var procs []*proc
	var https []string
	for b := range o.brokers {
		name := fmt.Sprintf("core-%d", b+1)
		ka, ha := addr(kafkaPort+b, o.portOffset), addr(coreHTTPPort+b, o.portOffset)
		args := []string{"-data-dir", filepath.Join(o.data, name), "-kafka-addr", ka, "-http-addr", ha,
			"-node-id", strconv.Itoa(b + 1)}
		if d.sec != nil {
			cfg, err := d.sec.coreConfig(name, ka, o.brokers > 1)
			if err != nil {
				return err
			}
			cfgPath := filepath.Join(o.data, name+".yaml")
			if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
				return fmt.Errorf("%s: write config: %w", name, err)
			}
			args = append(args, "-config", cfgPath)
		}
		if o.brokers > 1 {
			args = append(args, "-serf-addr", join[b], "-raft-addr", addr(raftPort+b, o.portOffset),
				"-rpc-addr", addr(rpcPort+b, o.portOffset), "-join", strings.Join(join, ","),
				"-bootstrap-expect", strconv.Itoa(o.brokers))
		}
		p, err := startProc(name, d.logDir, filepath.Join(o.bin, "tributary-core"), args...)
		if err != nil {
			return err
		}
		d.add(&d.cores, p)
		procs, https = append(procs, p), append(https, ha)
		d.brokerAddrs = append(d.brokerAddrs, ka)
	}
	// All are started before any is awaited: a cluster member may wait
	// for the others before it serves.
	for i, p := range procs {
		if err := waitHealthy(ctx, p, "http://"+https[i]+"/healthz", startTimeout); err != nil {
			return err
		}
		fmt.Printf("  %-8s Kafka %s, metrics http://%s/metrics\n", p.name, d.brokerAddrs[i], https[i])
	}
	if o.brokers > 1 {
		ctrl, err := waitCluster(ctx, d.brokerAddrs, startTimeout, d.clientOpts()...)
		if err != nil {
			return err
		}
		fmt.Printf("  cluster of %d brokers formed, controller: broker %d\n", o.brokers, ctrl)
	}
	return nil
}

// startEdge writes the edge's config and starts it with its bridge pointed
// at the core. An edge binary without bridge settings refuses the config
// (unknown keys are an error); it is then started without, and the view
// says so.
func (d *demo) startEdge(ctx context.Context, e int) error {
	o := d.o
	name := fmt.Sprintf("edge-%d", e)
	cfgPath := filepath.Join(o.data, name+".yaml")
	ha := addr(edgeHTTPPort+e, o.portOffset)
	for _, bridged := range []bool{d.bridgeOff == "", false} {
		cfg, err := edgeConfig(filepath.Join(o.data, name), "demo-"+name, addr(mqttPort+e, o.portOffset), ha, d.brokerAddrs, bridged)
		if err != nil {
			return err
		}
		if d.sec != nil {
			if cfg, err = d.secureEdge(cfg, name, addr(mqttPort+e, o.portOffset), bridged); err != nil {
				return err
			}
		}
		if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
			return fmt.Errorf("%s: write config: %w", name, err)
		}
		p, err := startProc(name, d.logDir, filepath.Join(o.bin, "tributary-edge"), "-config", cfgPath)
		if err != nil {
			return err
		}
		err = waitHealthy(ctx, p, "http://"+ha+"/healthz", startTimeout)
		if err == nil {
			d.add(&d.edges, p)
			fmt.Printf("  %-8s MQTT %s, metrics http://%s/metrics, config %s\n", name, addr(mqttPort+e, o.portOffset), ha, cfgPath)
			return nil
		}
		if !bridged || !p.exited() || !strings.Contains(p.tail(5), "bridge") {
			d.add(&d.edges, p)
			return err
		}
		d.bridgeOff = "this tributary-edge has no bridge settings yet; readings stay on the edges"
		fmt.Printf("  %-8s refused the bridge config; starting the edges without it\n", name)
		d.log.Warn("edge refused bridge config", "edge", name, "log", p.tail(5))
	}
	return fmt.Errorf("%s: did not start", name)
}

// edgeConfig is a tributary-edge YAML config (see deploy/edge.example.yaml).
func edgeConfig(dataDir, edgeID, mqttAddr, httpAddr string, brokers []string, bridged bool) ([]byte, error) {
	cfg := map[string]any{
		"data_dir": dataDir,
		"edge_id":  edgeID,
		"mqtt":     map[string]any{"address": mqttAddr},
		"http":     map[string]any{"address": httpAddr},
		// The simulated devices connect without logins.
		"auth": map[string]any{"allow_anonymous": true},
	}
	if bridged {
		cfg["bridge"] = map[string]any{"brokers": brokers}
	}
	// One aggregation, so the view shows a derived stream: per device and
	// 10 seconds, the temperature's count, min, mean, max and p99, written
	// by the edge to sensors.10s and forwarded by the bridge like any stream.
	cfg["aggregations"] = []map[string]any{{
		"name": "10s", "source": "sensors",
		"fields":     []map[string]any{{"name": "temp", "path": "temp"}},
		"window":     map[string]any{"type": "tumbling", "size": "10s"},
		"aggregates": []string{"count", "min", "mean", "max", "p99"},
		"lateness":   "2s",
	}}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("edge config: %w", err)
	}
	return append([]byte("# Written by the demo launcher (deploy/demo) on every start.\n"), b...), nil
}

func (d *demo) add(list *[]*proc, p *proc) {
	d.mu.Lock()
	defer d.mu.Unlock()
	*list = append(*list, p)
}

func (d *demo) snapshot(list *[]*proc) []*proc {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*proc(nil), *list...)
}

// runningConsumer is the consumer and the goroutine polling it.
type runningConsumer struct {
	c      *consumer
	cancel context.CancelFunc
	done   chan struct{}
}

func startConsumer(ctx context.Context, brokers []string, group string, log *slog.Logger, opts ...kgo.Opt) (*runningConsumer, error) {
	c, err := newConsumer(brokers, group, log, opts...)
	if err != nil {
		return nil, err
	}
	// Not ctx: the consumer outlives the first Ctrl-C until the edges have
	// stopped, then leaves its group before the core goes.
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rc := &runningConsumer{c: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rc.done)
		c.run(cctx)
	}()
	return rc, nil
}

func (rc *runningConsumer) stop() {
	if rc == nil {
		return
	}
	rc.cancel()
	<-rc.done
}

// watch redraws the view every refresh until ctx is done.
func (d *demo) watch(ctx context.Context, cons *runningConsumer) {
	o := d.o
	var devices []string
	for e := range o.edges {
		for k := range min(o.showDevices, o.devices) {
			devices = append(devices, fmt.Sprintf("dev-%06d", e*o.devices+k))
		}
	}
	fi, err := os.Stdout.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0
	client := &http.Client{Timeout: 2 * time.Second}
	var tr tracker
	for range tick.Every(ctx, o.refresh) {
		var rows []edgeSample
		for e := range o.edges {
			s := edgeSample{Name: fmt.Sprintf("demo-edge-%d", e), MQTT: addr(mqttPort+e, o.portOffset), Devices: o.devices}
			var m samples
			if m, s.Err = scrape(ctx, client, "http://"+addr(edgeHTTPPort+e, o.portOffset)+"/metrics"); s.Err == nil {
				s.Totals = edgeTotalsFrom(m)
			}
			if m, s.FleetErr = scrape(ctx, client, "http://"+addr(simHTTPPort+e, o.portOffset)+"/metrics"); s.FleetErr == nil {
				s.Fleet = fleetTotalsFrom(m)
			}
			rows = append(rows, s)
		}
		if ctx.Err() != nil {
			return
		}
		v := tr.build(time.Now(), rows, cons.c.stats(devices), devices)
		v.Uptime, v.DataDir, v.Brokers, v.Group, v.BridgeOff = time.Since(d.started), d.o.data, d.brokerAddrs, o.group, d.bridgeOff
		for _, list := range []*[]*proc{&d.cores, &d.edges, &d.sim} {
			for _, p := range d.snapshot(list) {
				if p.exited() {
					v.Exited = append(v.Exited, fmt.Sprintf("%s exited (%s): see %s", p.name, exitText(p.err), p.logPath))
				}
			}
		}
		var buf bytes.Buffer
		if tty {
			buf.WriteString("\x1b[H\x1b[2J")
		} else {
			buf.WriteString("\n")
		}
		v.render(&buf)
		_, _ = os.Stdout.Write(buf.Bytes())
	}
}

// shutdown stops the tiers in order: fleets (they drain their publishes),
// edges (their bridges stop with them), the consumer (it commits and leaves
// its group), then the core. It returns how many did not stop cleanly.
func (d *demo) shutdown(cons *runningConsumer) int {
	var errs []error
	step := func(what string, f func() []error) {
		start := time.Now()
		fmt.Printf("stopping %s ... ", what)
		es := f()
		if len(es) == 0 {
			fmt.Printf("done (%s)\n", time.Since(start).Round(10*time.Millisecond))
		} else {
			fmt.Printf("%v\n", errors.Join(es...))
		}
		errs = append(errs, es...)
	}
	stopAll := func(ps []*proc, sig os.Signal, timeout time.Duration) []error {
		var (
			wg sync.WaitGroup
			mu sync.Mutex
			es []error
		)
		for _, p := range ps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.stop(sig, timeout); err != nil {
					mu.Lock()
					es = append(es, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return es
	}
	if ps := d.snapshot(&d.sim); len(ps) > 0 {
		step("fleets", func() []error { return stopAll(ps, os.Interrupt, simStop) })
	}
	if ps := d.snapshot(&d.edges); len(ps) > 0 {
		step("edges", func() []error { return stopAll(ps, syscall.SIGTERM, edgeStop) })
	}
	if cons != nil {
		step("consumer", func() []error { cons.stop(); return nil })
	}
	if ps := d.snapshot(&d.cores); len(ps) > 0 {
		step("core", func() []error { return stopAll(ps, syscall.SIGTERM, coreStop) })
	}
	fmt.Printf("everything stopped; data and logs kept in %s (run again to continue)\n", d.o.data)
	d.log.Info("demo stopped", "errors", len(errs))
	return len(errs)
}

// killAll ends every child at once (second Ctrl-C).
func (d *demo) killAll() {
	for _, list := range []*[]*proc{&d.sim, &d.edges, &d.cores} {
		for _, p := range d.snapshot(list) {
			if !p.exited() {
				killGroup(p.cmd)
			}
		}
	}
}

// waitCluster polls the brokers' metadata until every broker is listed and
// a controller is elected, and returns the controller's id.
func waitCluster(ctx context.Context, brokers []string, timeout time.Duration, opts ...kgo.Opt) (int32, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID("tributary-demo-setup")}, opts...)...)
	if err != nil {
		return 0, fmt.Errorf("cluster check client: %w", err)
	}
	defer cl.Close()
	var last string
	for {
		req := kmsg.NewPtrMetadataRequest() // no topics: brokers and controller only
		reqCtx, reqCancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := req.RequestWith(reqCtx, cl)
		reqCancel()
		switch {
		case err != nil:
			last = err.Error()
		case len(resp.Brokers) == len(brokers) && resp.ControllerID >= 0:
			return resp.ControllerID, nil
		default:
			last = fmt.Sprintf("%d of %d brokers listed, controller %d", len(resp.Brokers), len(brokers), resp.ControllerID)
		}
		if !tick.Sleep(ctx, 200*time.Millisecond) {
			return 0, fmt.Errorf("cluster not formed within %v (%s); see the core-N logs", timeout, last)
		}
	}
}
