module github.com/tributary-io/tributary/benchmarks

go 1.26.0

require (
	github.com/tributary-io/tributary v0.0.0
	golang.org/x/term v0.47.0
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	github.com/twmb/franz-go/pkg/kmsg v1.15.0 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/tributary-io/tributary => ../
