package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"
)

// globals are the flags every command shares.
type globals struct {
	brokers []string
	output  string
	timeout time.Duration
	edge    string

	stdin          io.Reader
	stdout, stderr io.Writer
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "tributary",
		Short: "Administer Tributary cores (Kafka protocol) and edges (HTTP API)",
		Long: `tributary administers a Tributary system.

Core commands (cluster, topic, group) speak the Kafka protocol to the brokers
named by --brokers (or $TRIBUTARY_BROKERS), so they work against any Kafka
cluster too. Edge commands read an edge gateway's read-only JSON API on its
HTTP listener (--edge, or $TRIBUTARY_EDGE).

Output is an aligned table; -o json or -o yaml prints the same data for
scripts.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch g.output {
			case "table", "json", "yaml":
				return nil
			}
			return fmt.Errorf("-o %q: want table, json or yaml", g.output)
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	brokers := []string{"127.0.0.1:9092"}
	if env := os.Getenv("TRIBUTARY_BROKERS"); env != "" {
		brokers = strings.Split(env, ",")
	}
	edge := "http://127.0.0.1:9645"
	if env := os.Getenv("TRIBUTARY_EDGE"); env != "" {
		edge = env
	}
	pf := root.PersistentFlags()
	pf.StringSliceVarP(&g.brokers, "brokers", "b", brokers, "core brokers to bootstrap from (host:port, comma separated; env TRIBUTARY_BROKERS)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table, json or yaml")
	pf.DurationVar(&g.timeout, "timeout", 10*time.Second, "how long one request may take")
	pf.StringVar(&g.edge, "edge", edge, "edge HTTP API base URL (env TRIBUTARY_EDGE)")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(clusterCmd(g), topicCmd(g), groupCmd(g), edgeCmd(g), versionCmd(g))
	return root
}

// client opens a Kafka client on the configured brokers; callers close it.
func (g *globals) client(opts ...kgo.Opt) (*kgo.Client, *kadm.Client, error) {
	if len(g.brokers) == 0 {
		return nil, nil, fmt.Errorf("no brokers: give --brokers host:port")
	}
	base := []kgo.Opt{
		kgo.SeedBrokers(g.brokers...),
		kgo.ClientID("tributary-cli"),
		kgo.RequestTimeoutOverhead(g.timeout),
		kgo.RetryTimeout(g.timeout),
		kgo.DialTimeout(g.timeout),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(g.timeout.Milliseconds()))
	return cl, adm, nil
}

// session is what one command's requests need: an admin client on the
// configured brokers and a context bounded by --timeout; done releases both.
func (g *globals) session(cmd *cobra.Command) (context.Context, *kadm.Client, func(), error) {
	cl, adm, err := g.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := g.ctx(cmd)
	return ctx, adm, func() { cancel(); cl.Close() }, nil
}

// inSession is the RunE of a command whose requests share one session; run
// gets the command's arguments.
func (g *globals) inSession(run func(ctx context.Context, adm *kadm.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx, adm, done, err := g.session(cmd)
		if err != nil {
			return err
		}
		defer done()
		return run(ctx, adm, args)
	}
}

// ctx bounds one command's requests by --timeout.
func (g *globals) ctx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), g.timeout)
}

// table is what a command shows: rows under a header for people, and data
// (the same facts, typed) for -o json|yaml.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, row)
}

// print writes data as JSON or YAML, or the tables (separated by a blank
// line) as aligned columns.
func (g *globals) print(data any, tables ...*table) error {
	switch g.output {
	case "json":
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(data)
	case "yaml":
		return writeYAML(g.stdout, data)
	}
	for i, t := range tables {
		if i > 0 {
			fmt.Fprintln(g.stdout)
		}
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		if len(t.header) > 0 {
			fmt.Fprintln(tw, strings.Join(t.header, "\t"))
		}
		for _, r := range t.rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// writeYAML goes through JSON so the json tags name the fields in both
// formats and values stay plain (durations as their JSON form).
func writeYAML(w io.Writer, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return enc.Close()
}

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the CLI's version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := map[string]string{"version": "(devel)", "commit": "", "go": ""}
			if bi, ok := debug.ReadBuildInfo(); ok {
				v["version"], v["go"] = bi.Main.Version, bi.GoVersion
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						v["commit"] = s.Value
					}
				}
			}
			t := &table{}
			t.add("tributary", v["version"], v["commit"], v["go"])
			return g.print(v, t)
		},
	}
}
