// Package console holds the web consoles' static files, so the core's and
// the edge's pages share one stylesheet and one script of helpers
// (shared/console: console.css, common.js) and keep only what differs
// (core/console, edge/console: index.html, console.js). Each tier serves
// its FS, whose "console" directory holds its own files and the shared
// ones; neither page needs a build step.
package console

import (
	"embed"
	"errors"
	"io/fs"
)

//go:embed core edge shared
var files embed.FS

// Core and Edge are each tier's console files under "console/".
var (
	Core fs.FS = layers{sub("core"), sub("shared")}
	Edge fs.FS = layers{sub("edge"), sub("shared")}
)

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // the directories are embedded above
	}
	return f
}

// layers opens a name from the first layer that has it: a tier's own files,
// then the shared ones.
type layers []fs.FS

func (l layers) Open(name string) (fs.File, error) {
	for _, layer := range l {
		f, err := layer.Open(name)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}
