// Command tributary-sim is Tributary's sensor fleet and end-to-end judge.
//
//	tributary-sim run     simulate N devices publishing readings over MQTT
//	tributary-sim verify  check a stream (Kafka or an edge's logs) against a run
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `tributary-sim: a sensor fleet and an end-to-end verifier for Tributary.

Usage:
  tributary-sim run    [flags]   simulate devices publishing readings to an MQTT broker (the edge)
  tributary-sim verify [flags]   check what reached a stream against a run's summary
  tributary-sim help [command]   show a command's flags

A typical check:
  tributary-sim run --broker 127.0.0.1:1883 --devices 50 --duration 10s --summary run.json
  tributary-sim verify --brokers 127.0.0.1:9092 --summary run.json
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal asks for a graceful end (drain, summary); give
		// the default behaviour back so a second one kills at once.
		<-ctx.Done()
		stop()
	}()
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMain is the whole program minus process concerns, so tests can run
// it in-process. It returns the exit code: 0 ok, 1 verification failed or
// run error, 2 usage error.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "verify":
		return cmdVerify(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		if len(args) > 1 {
			return runMain(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return 2
}

// parseFlags parses a command's flags; the commands take no arguments
// after them. When ok is false the command ends with code: 0 after -help,
// 2 on a usage error (already reported on stderr).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %v\n", fs.Name(), fs.Args())
		return 2, false
	}
	return 0, true
}

// isTerminal reports whether f is a character device (a terminal), without
// pulling in a terminal library.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
