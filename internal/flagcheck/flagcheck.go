// Package flagcheck holds the command-line conventions the daemons share,
// so a mistake gets the same one-line answer from each.
package flagcheck

import (
	"errors"
	"flag"
	"fmt"
	"os"
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

// Exit ends a daemon's main with what its run returned: nothing on nil;
// exit status 0 on flag.ErrHelp (the usage is printed); otherwise
// "<name>: <err>" on stderr and exit status 1.
func Exit(name string, err error) {
	if err == nil {
		return
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, name+":", err)
	os.Exit(1)
}
