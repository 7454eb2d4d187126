# Demo dataset: one MVTec-layout category (build/demo/tiles) generated deterministically by
# backend/demodata, so `make run` works with no outside data. It is built by a small generator command
# rather than bin/rdre, which depends on BUILD_TARGETS and would make a cycle (and compile the cgo parts
# twice). The generator skips its work when build/demo/tiles/manifest.json is of the same generator
# version and every file still has its recorded digest; `touch` keeps make from asking again.

DEMO_DIR := build/demo

BUILD_TARGETS += $(DEMO_DIR)/tiles
RUN_FLAGS     += --data $(DEMO_DIR)

.PHONY: demo
demo: $(DEMO_DIR)/tiles

$(DEMO_DIR)/tiles: $(wildcard backend/demodata/*.go backend/demodata/cmd/rdre-demo/*.go)
	$(GO) run ./backend/demodata/cmd/rdre-demo --out $(DEMO_DIR)
	@touch $@
