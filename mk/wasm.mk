# The browser UI: app/wasm compiled for GOOS=js GOARCH=wasm, gzipped into backend/webui/dist where the
# server embeds it (package webui serves it with Content-Encoding: gzip). Runs before bin/rdre is built.
# The uncompressed build stays in build/wasm/app.wasm for size reports.

WASM_RAW := build/wasm/app.wasm
WASM_GZ  := backend/webui/dist/app.wasm.gz

BUILD_TARGETS += wasm
TEST_TARGETS  += wasm-size

.PHONY: wasm wasm-size e2e
wasm:
	@mkdir -p $(dir $(WASM_RAW))
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags=-s -o $(WASM_RAW) ./app/wasm
	@if [ ! -f $(WASM_GZ) ] || [ $(WASM_RAW) -nt $(WASM_GZ) ]; then \
	  gzip -9 -n -c $(WASM_RAW) > $(WASM_GZ).tmp && mv $(WASM_GZ).tmp $(WASM_GZ); \
	fi

# Prints the sizes the issue asks for; fails if server-only code leaked into the wasm (it then
# grows well past the budget).
WASM_MAX_GZ_BYTES ?= 4000000
wasm-size: wasm
	@raw=$$(stat -c %s $(WASM_RAW)); gz=$$(stat -c %s $(WASM_GZ)); \
	echo "app.wasm: $$raw bytes raw, $$gz bytes gzip"; \
	if [ $$gz -gt $(WASM_MAX_GZ_BYTES) ]; then echo "app.wasm.gz above $(WASM_MAX_GZ_BYTES) bytes: server-only code in the wasm?"; exit 1; fi

# Browser tests alone (they are also part of go-test); RDRE_SCREENSHOTS=1 copies screenshots to docs/screenshots.
e2e: build
	$(GO) test -count=1 -v ./backend/e2e/
