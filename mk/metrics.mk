# Metrics engine (backend/metrics) and map readers (backend/mapio). Their tests run in go-test; these
# targets are for hand runs: the issue's timing benchmarks and a short fuzzing pass over the file readers.

FUZZTIME ?= 30s

.PHONY: bench-metrics bench-metrics-numpy fuzz-maps
bench-metrics:
	$(GO) test -run '^$$' -bench . -benchtime=3x -cpu 2 -benchmem ./backend/metrics/

# rdre eval against the plain numpy implementation of the same definitions, side by side in one run on 20
# maps of 1024x1024 (models/bench_metrics.py).
bench-metrics-numpy: build
	/usr/bin/python3 -m models.bench_metrics --rdre ./bin/rdre --rounds 3

fuzz-maps:
	@for f in FuzzReadNPY FuzzReadTIFF FuzzReadMask; do \
	  $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./backend/mapio/ || exit 1; \
	done
