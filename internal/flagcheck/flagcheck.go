// Package flagcheck holds the command-line conventions both daemons share,
// so a mistake gets the same one-line answer from either.
package flagcheck

import (
	"fmt"
	"strings"
)

// Unexpected explains stray positional arguments: the flag package stops at
// the first one, so everything after it would otherwise be ignored.
func Unexpected(args []string) error {
	hint := ""
	if strings.HasSuffix(args[0], ".yaml") || strings.HasSuffix(args[0], ".yml") {
		hint = fmt.Sprintf(" (give a config file as -config %s; flags go before any other argument)", args[0])
	}
	return fmt.Errorf("unexpected arguments %q%s", args, hint)
}

// Disabled reports whether an optional listener address means "off": empty
// or "-", on every daemon.
func Disabled(addr string) bool { return addr == "" || addr == "-" }
