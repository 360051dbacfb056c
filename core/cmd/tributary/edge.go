package main

import "github.com/spf13/cobra"

func edgeCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "edge", Short: "Look at an edge gateway through its HTTP API"}
}
