package gateway

import (
	"io/fs"
	"net/http"

	"github.com/tributary-io/tributary/internal/console"
)

// The edge's web console: with http.console set, a read-only page at
// /console/ on the HTTP listener, embedded in the binary, that polls the
// JSON API next to it (/api/v1/status, /streams, /bridge, /tail) and
// /healthz. It is smaller than the core's: one gateway, its streams, its
// bridge and a live chart of a device's readings.

// The page's files are in internal/console, with the core's.
var consoleFiles = console.Edge

func (g *Gateway) registerConsole(mux *http.ServeMux) {
	static, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	mux.Handle("GET /console/", http.StripPrefix("/console/", http.FileServerFS(static)))
	mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
}
