# Fuzz targets: every Fuzz* function of backend/ and shared/ (the decoders of untrusted bytes: images,
# maps, masks, websocket messages, store records). Each target also fails when one input allocates far
# more than its size justifies (see the targets' comments). `make test` runs each for FUZZ_SHORT;
# `make fuzz` runs each for FUZZTIME (2m unless given on the command line or in the environment) and
# prints the executions of each; FUZZ_DIRS narrows the folders searched (`make fuzz FUZZ_DIRS=shared`).
# Go runs one target per invocation; every worker is a process of its own that runs one input at a
# time, so the allocation measured around an input is that input's.

FUZZ_SHORT ?= 3s
# Go minimizes every new input that widens coverage, for up to a minute, without counting executions;
# a short run keeps that short.
FUZZ_MINIMIZE_SHORT ?= 1s
FUZZ_MINIMIZE_LONG  ?= 10s
FUZZ_LONG  ?= $(if $(filter command line environment%,$(origin FUZZTIME)),$(FUZZTIME),2m)
FUZZ_DIRS  ?= backend shared

TEST_TARGETS += fuzz-short

.PHONY: fuzz fuzz-short fuzz-list

# fuzz-run runs every target for $(1), minimizing new inputs for up to $(2); it runs them all, then fails
# when one failed (go test saves the failing input under the package's testdata/fuzz/).
# Go's fuzzer can end a short run with a bare "context deadline exceeded" when the time is up while a
# worker is still busy (no input failed, none is saved): such a run is tried once more, and anything else
# that fails, fails.
define fuzz-run
	@failed=""; for entry in $$(grep -rHoE '^func Fuzz[A-Za-z0-9_]*' --include='*_test.go' $(FUZZ_DIRS) | sort -u | sed 's/:func /:/'); do \
	  file=$${entry%%:*}; name=$${entry#*:}; pkg=./$$(dirname "$$file"); \
	  run() { $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(1) -fuzzminimizetime $(2) "$$pkg" 2>&1; }; \
	  out=$$(run); rc=$$?; \
	  if [ $$rc -ne 0 ] && echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -qE 'Failing input|failure while testing'; then \
	    echo "fuzz $$pkg $$name: the fuzzer's deadline flake, once more"; out=$$(run); rc=$$?; \
	  fi; \
	  if [ $$rc -eq 0 ]; then \
	    last=$$(echo "$$out" | grep -E 'fuzz: elapsed' | tail -n 1 | sed -E 's/.*elapsed: ([^,]*), execs: ([0-9]+).*/\1 \2/'); \
	    printf 'fuzz %-28s %-24s %s execs in %s\n' "$$pkg" "$$name" "$${last#* }" "$${last%% *}"; \
	  else \
	    echo "$$out" | grep -vE '^fuzz: elapsed'; echo "FAIL fuzz $$pkg $$name"; failed="$$failed $$pkg:$$name"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets failed:$$failed"; exit 1; fi
endef

fuzz-short:
	$(call fuzz-run,$(FUZZ_SHORT),$(FUZZ_MINIMIZE_SHORT))

fuzz:
	$(call fuzz-run,$(FUZZ_LONG),$(FUZZ_MINIMIZE_LONG))

fuzz-list:
	@grep -rHoE '^func Fuzz[A-Za-z0-9_]*' --include='*_test.go' $(FUZZ_DIRS) | sort -u
