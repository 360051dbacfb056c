# Tributary build. `make test` is what CI runs; `make demo` shows the data path.
GO        ?= go
BIN       ?= bin
PKGS      := ./...
LDFLAGS   := -s -w
CMDS      := $(wildcard edge/cmd/* core/cmd/* firmware-sim/cmd/*)

.PHONY: all build test test-short fuzz bench bench-go cross qemu-smoke lint demo clean

all: build

build:
	@mkdir -p $(BIN)
	@for c in $(CMDS); do \
		echo "go build $$c"; \
		$(GO) build -o $(BIN)/$$(basename $$c) ./$$c || exit 1; \
	done

# A short pass of every fuzz target, then the full suite with the race
# detector, mochi-mqtt's upstream tests on third_party/mochi included (log in
# bin/test.log, a closing "N passed, N failed" line).
test: lint
	@$(MAKE) --no-print-directory fuzz FUZZTIME=5s
	@bash .ci/gotest.sh

test-short:
	$(GO) test -short -count=1 $(PKGS)

FUZZTIME ?= 30s
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) bash .ci/fuzz.sh

# Side-by-side benchmarks into benchmarks/RESULTS.md (BENCHFLAGS=--quick for a short run).
bench:
	cd benchmarks && $(GO) run ./cmd/tributary-bench -out RESULTS.md $(BENCHFLAGS)

# Micro-benchmarks of every package (go test -bench).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

cross:
	@mkdir -p $(BIN)/linux-arm64 $(BIN)/linux-armv7
	@for c in $(CMDS); do \
		echo "cross $$c"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/linux-arm64/$$(basename $$c) ./$$c || exit 1; \
		CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/linux-armv7/$$(basename $$c) ./$$c || exit 1; \
	done

# Everything on loopback with a live view; Ctrl-C stops it, data stays in data/demo.
demo: build
	$(GO) build -o $(BIN)/tributary-demo ./deploy/demo
	$(BIN)/tributary-demo -bin $(BIN) $(DEMOFLAGS)

# The cross-built edge (arm64, armv7) under qemu user emulation.
qemu-smoke: cross build
	BIN=$(BIN) .ci/qemu-smoke.sh

# staticcheck, pinned; installed from the Go module proxy when missing.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	cd benchmarks && $(GO) vet ./...
	cd third_party/mochi && $(GO) vet ./...
	@$(STATICCHECK) -version 2>/dev/null | grep -q '($(STATICCHECK_VERSION:v%=%))' || \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(STATICCHECK) $(PKGS)
	cd benchmarks && $(STATICCHECK) ./...

clean:
	rm -rf $(BIN)
