# Metrics engine (backend/metrics) and map readers (backend/mapio). Their tests run in go-test; these
# targets are for hand runs: the issue's timing benchmarks and a short fuzzing pass over the file readers.

FUZZTIME ?= 30s

.PHONY: bench-metrics fuzz-maps
bench-metrics:
	$(GO) test -run '^$$' -bench . -benchtime=3x -cpu 2 -benchmem ./backend/metrics/

fuzz-maps:
	@for f in FuzzReadNPY FuzzReadTIFF FuzzReadMask; do \
	  $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./backend/mapio/ || exit 1; \
	done
