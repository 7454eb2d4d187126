# ONNX Runtime shared library for backend/inference (onnxruntime_go v1.35.0 speaks C API 29 = ORT 1.30.0).
# It comes from the npm registry (onnxruntime-node@1.30.0 ships the CPU core library, with the CUDA provider
# bridge, for linux/x64): `npm pack` downloads the tarball without running any install script, and only the
# one shared library is extracted. Nothing is committed; the result lives in build/ort (ignored).
# The target does nothing when the file is already there with the expected hash.

ORT_VERSION := 1.30.0
ORT_SHA256  := ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
ORT_MEMBER  := package/bin/napi-v6/linux/x64/libonnxruntime.so.1
ORT_LIB     := build/ort/libonnxruntime.so.1
NPM         ?= npm

SETUP_TARGETS += ort
BUILD_TARGETS += ort
# npm ships with this machine kind's Node.js (NodeSource's nodejs package bundles it). It is not added to
# APT_PACKAGES: Debian's npm package would pull Debian's nodejs and conflict with that one.

.PHONY: ort
ort:
	@if [ -f $(ORT_LIB) ] && echo "$(ORT_SHA256)  $(ORT_LIB)" | sha256sum -c --status; then exit 0; fi; \
	set -e; \
	command -v $(NPM) >/dev/null || { echo "ort: npm is needed to fetch onnxruntime-node@$(ORT_VERSION) (apt-get install npm)"; exit 1; }; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "ort: fetching onnxruntime-node@$(ORT_VERSION) from the npm registry"; \
	(cd "$$tmp" && $(NPM) pack --silent --ignore-scripts onnxruntime-node@$(ORT_VERSION) >/dev/null); \
	tar -xzf "$$tmp"/onnxruntime-node-$(ORT_VERSION).tgz -C "$$tmp" $(ORT_MEMBER); \
	echo "$(ORT_SHA256)  $$tmp/$(ORT_MEMBER)" | sha256sum -c --status || { echo "ort: sha256 mismatch for $(ORT_MEMBER) (want $(ORT_SHA256))"; exit 1; }; \
	mkdir -p $(dir $(ORT_LIB)); \
	install -m 0644 "$$tmp/$(ORT_MEMBER)" $(ORT_LIB).tmp; \
	mv $(ORT_LIB).tmp $(ORT_LIB); \
	echo "ort: $(ORT_LIB) ready (ONNX Runtime $(ORT_VERSION))"
