// Package buildinfo says which build of a Tributary binary is running: the
// version stamped at link time (-ldflags "-X .../buildinfo.Version=v1.2.3"),
// else the module version, plus the VCS commit and the Go version recorded
// by the toolchain.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at link time; empty means "read it from the build info".
var Version = ""

// Info is what -version prints.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
}

// Read collects the build's identity.
func Read() Info {
	in := Info{Version: Version, Commit: "unknown", GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if in.Version == "" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if in.Version == "" || in.Version == "(devel)" {
		in.Version = "dev"
	}
	return in
}

// String is the one line -version prints: "<name> <version> (commit <c>, <go>)".
func (in Info) String() string {
	commit := in.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if in.Modified {
		commit += "+modified"
	}
	return fmt.Sprintf("%s (commit %s, %s)", in.Version, commit, in.GoVersion)
}
