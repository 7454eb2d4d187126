# RD-RE in PyTorch (models/): tests, training and export. Python is Debian's (python3-torch 1.13 and friends,
# installed by mk/apt.mk); the parity tests load build/ort/libonnxruntime.so.1 (mk/ort.mk), so `ort` runs first.

MODELS_PY      ?= /usr/bin/python3
MODELS_RUNS    ?= models/runs
DTD_DIR        ?= ../shared/data/dtd
MVTEC_DIR      ?= ../shared/data/mvtec
DEMO_DATA      ?= build/demo/tiles
TEST_TARGETS   += test-models

# `make run` serves the shipped demo model next to the demo dataset.
ifneq ($(wildcard models/default/demo.onnx),)
RUN_FLAGS      += --model models/default/demo.onnx
endif

.PHONY: test-models train-demo train-bottle train-bottle-rd eval-bottle export-model ablation-data

# `-p no:cacheprovider` keeps .pytest_cache out of the work tree; the count check turns "no tests ran" (exit 5)
# into a failure with a message instead of a confusing code.
test-models: ort
	@n=$$($(MODELS_PY) -m pytest -q --collect-only -p no:cacheprovider models/tests 2>/dev/null | grep -c '::'); \
	if [ "$$n" -eq 0 ]; then echo "test-models: no tests collected in models/tests"; exit 1; fi
	$(MODELS_PY) -m pytest -q -p no:cacheprovider models/tests

# The shipped demo model (models/default/demo.onnx): small resolution, short schedule, on the demo tiles.
train-demo: $(DEMO_DATA)
	$(MODELS_PY) -m models.train --data $(DEMO_DATA) --category "" --size 128 --batch-size 8 \
	  --steps-student 400 --steps-seg 200 --seed 0 --threads 1 --out $(MODELS_RUNS)/demo --resume --export
	cp $(MODELS_RUNS)/demo/model.onnx models/default/demo.onnx

# MVTec AD bottle with the MobileNetV2 teacher on CPU (resumes from its checkpoint). Not committed.
train-bottle:
	$(MODELS_PY) -m models.train --data $(MVTEC_DIR) --category bottle --teacher mobilenet_v2 \
	  --anomaly-source $(DTD_DIR) --size 256 --batch-size 8 --steps-student 1000 --steps-seg 450 \
	  --seed 0 --threads 1 --out $(MODELS_RUNS)/bottle --resume --export

# The baseline RD-RE has to beat: plain reverse distillation with the same teacher and code (no synthesis,
# no fusion, no segmentation head), 1500 steps at batch 8 as in DESIGN.md. About 15 min on one thread.
train-bottle-rd:
	$(MODELS_PY) -m models.train --data $(MVTEC_DIR) --category bottle --teacher mobilenet_v2 \
	  --size 256 --batch-size 8 --steps-student 1500 --preset plain-rd \
	  --seed 0 --threads 1 --out $(MODELS_RUNS)/bottle_rd --resume --export

eval-bottle:
	$(MODELS_PY) -m models.predict --model $(MODELS_RUNS)/bottle/model.onnx --data $(MVTEC_DIR)/bottle --out $(MODELS_RUNS)/bottle/maps
	$(MODELS_PY) -m models.evaluate --maps $(MODELS_RUNS)/bottle/maps --gt $(MVTEC_DIR)/bottle

# Development data of the multi-category ablation (models/README.md, "Beyond bottle"): bottle, the magnetic
# tiles and DTD resized to 256 in .devdata/ (git-ignored; carried to a GPU machine by models/device_ablation.sh).
ablation-data:
	$(MODELS_PY) -m models.ablation prepare --out .devdata

# make export-model CKPT=models/runs/bottle/checkpoint.pt OUT=build/bottle.onnx
export-model:
	$(MODELS_PY) -m models.export --checkpoint $(CKPT) --out $(OUT)
