# RD-RE Studio. `make run` builds and starts the tool on the demo dataset; `make test` installs what the
# tests need on a fresh Debian machine and runs every test. Each part of the project adds its own targets
# in mk/*.mk (appending to SETUP_TARGETS, BUILD_TARGETS and TEST_TARGETS).

GO      ?= go
PY      ?= /usr/bin/python3
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
ADDR    ?= 127.0.0.1:8080

SETUP_TARGETS :=
BUILD_TARGETS :=
TEST_TARGETS  :=

.PHONY: all build run test setup vet fmt-check go-test
all: build

include $(sort $(wildcard mk/*.mk))

build: $(BUILD_TARGETS) bin/rdre

bin/rdre: $(BUILD_TARGETS) FORCE
	@mkdir -p bin
	$(GO) build -trimpath -ldflags "-X github.com/rdre-studio/studio/backend/cli/version.Version=$(VERSION)" -o bin/rdre ./backend/cmd/rdre

run: build $(RUN_DEPS)
	./bin/rdre serve --addr $(ADDR) $(RUN_FLAGS)

setup: $(SETUP_TARGETS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: build
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./app/... ./shared/... ./backend/metrics/... ./backend/resample/...

# The browser tests train and evaluate real models; on a loaded machine the e2e package runs past go test's
# default 10 minutes (all of make test takes 6-8 in CI), so the limit is raised, well inside CI's 90.
go-test: build
	$(GO) test -race -count=1 -timeout 30m ./...

test: setup fmt-check vet go-test $(TEST_TARGETS)
	@echo "make test: all suites passed"

FORCE:
