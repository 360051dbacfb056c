package testkit

import (
	"flag"
	"os"
	"strconv"
	"testing"

	"github.com/tributary-io/tributary/internal/race"
)

// WaitBoundParallel is for a package whose tests mostly wait (on fsyncs,
// elections, timeouts, other processes) rather than compute. Called from
// TestMain, it parses the flags and, in -short mode when -test.parallel
// was not given, lets n parallel tests run at once instead of GOMAXPROCS
// (2 on a small machine, which leaves both cores idle while two tests
// sleep). Full runs keep go test's default, as do runs with the race
// detector (which make the tests compute several times more: eight
// three-broker clusters at once then starve their elections) and anyone
// who sets -parallel. It returns m.Run's exit code.
func WaitBoundParallel(m *testing.M, n int) int {
	flag.Parse()
	if testing.Short() && !race.Enabled && !flagSet("test.parallel") {
		if err := flag.Set("test.parallel", strconv.Itoa(n)); err != nil {
			// The flag is testing's own; failing to set it means an
			// incompatible Go, not a reason to skip the tests.
			os.Stderr.WriteString("testkit: " + err.Error() + "\n")
		}
	}
	return m.Run()
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
