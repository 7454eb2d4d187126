# `make bench-image-path`: the image path of issue 12 measured side by side in one run, on the MVTec AD bottle
# category by default. Nothing here is part of `make test` (timings are reported, never asserted).
#   1. pre-processing of one 900x900 image per decoded type, today's path (RGB8 + resample.Preprocess) against
#      the direct one, and RGB8 against RGB8Into (go test -bench);
#   2. a whole evaluation job of the server over the test split (decode, model, map cache, metrics);
#   3. `rdre bench --images`: rdre infer against python3 -m models.predict (the same model in the same ONNX
#      Runtime library) and, with BENCH_BASELINE=OLD_RDRE, an older build; then cold and warm thumbnails.

BENCH_DATA     ?= $(MVTEC_DIR)/bottle
BENCH_MODEL    ?= models/default/demo.onnx
BENCH_ROUNDS   ?= 3
BENCH_BASELINE ?=

.PHONY: bench-image-path
bench-image-path: build
	$(GO) test -run '^$$' -bench 'BenchmarkPreprocess|BenchmarkRGB8' -benchtime 20x ./backend/inference ./backend/imageio
	RDRE_BENCH_DATA=$(abspath $(BENCH_DATA)) RDRE_BENCH_MODEL=$(abspath $(BENCH_MODEL)) \
	  $(GO) test -run '^$$' -bench BenchmarkJob_Evaluate -benchtime 1x ./backend/jobs
	./bin/rdre bench --images $(BENCH_DATA) --model $(BENCH_MODEL) --rounds $(BENCH_ROUNDS) \
	  $(if $(BENCH_BASELINE),--baseline $(BENCH_BASELINE))
