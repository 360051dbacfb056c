// Command tributary is the admin CLI for a Tributary system: it talks to
// core brokers over the Kafka protocol (through franz-go's kadm) and to edge
// gateways over their read-only HTTP API.
//
//	tributary cluster info|health
//	tributary topic list|describe|create|delete|alter-config|consume|produce
//	tributary group list|describe|lag|reset-offsets
//	tributary edge status|streams|backlog|tail
//	tributary version | completion
//
// Output is an aligned table by default and JSON or YAML with -o.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Stdin, os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tributary:", err)
		os.Exit(1)
	}
}
