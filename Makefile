# memlane — developer entry points. `make` (or `make help`) lists the targets.
#
# One cargo profile (dev) for build, test, demo and the Python tests, so lance is compiled
# once per target dir; release only for `make bench`. The target dir lives outside the
# clone so later runs on the same machine are incremental.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.NOTPARALLEL:
.DEFAULT_GOAL := help

CARGO_TARGET_DIR ?= $(HOME)/.cache/memlane/target
export CARGO_TARGET_DIR
CARGO   ?= cargo
PYTHON  ?= python3
# where `make install-python` installs the release wheel (a venv's python, or the python3 on PATH)
PYTHON_TARGET ?= $(PYTHON)
VENV    ?= $(HOME)/.cache/memlane/venv
MEMLANE  = $(CARGO_TARGET_DIR)/debug/memlane
PY_REQS  = bindings/python/requirements-test.txt

# root runs apt-get directly; anyone else through sudo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help deps deps-system deps-python deps-bench deps-browser build python wheel install-python demo test test-rust test-python check-wasm test-wasm preview bench fmt lint fuzz

help: ## List the targets
	@echo "memlane make targets (CARGO_TARGET_DIR=$(CARGO_TARGET_DIR), VENV=$(VENV)):"
	awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: deps-system deps-python ## Install protoc (apt) and the Python test venv (idempotent)

deps-system: ## Install protoc (protobuf-compiler) and, for the metrics test, Prometheus with apt-get if missing
	@if command -v protoc >/dev/null 2>&1; then
	  echo "deps: protoc present ($$(protoc --version))"
	else
	  echo "deps: installing protobuf-compiler"
	  $(SUDO) apt-get update
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y protobuf-compiler
	fi
	if command -v prometheus >/dev/null 2>&1; then
	  echo "deps: prometheus present"
	else
	  echo "deps: installing prometheus (Debian's server, scraped by the metrics test)"
	  $(SUDO) apt-get update
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
	fi

deps-python: ## Create the venv and pip install bindings/python/requirements-test.txt (skipped when its stamp matches)
	@hash=$$(sha256sum $(PY_REQS) | cut -c1-16)
	stamp="$(VENV)/.memlane-requirements-$$hash"
	if [ -f "$$stamp" ] && [ -x "$(VENV)/bin/python" ]; then
	  echo "deps: Python venv up to date ($(VENV))"
	  exit 0
	fi
	if [ ! -x "$(VENV)/bin/python" ]; then
	  if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then
	    echo "deps: installing python3-venv"
	    $(SUDO) apt-get update
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
	  fi
	  rm -rf "$(VENV)"
	  $(PYTHON) -m venv "$(VENV)"
	fi
	"$(VENV)/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
	"$(VENV)/bin/python" -m pip install --quiet --disable-pip-version-check -r $(PY_REQS)
	rm -f "$(VENV)"/.memlane-requirements-*
	touch "$$stamp"
	echo "deps: Python venv ready ($(VENV))"

build: deps-system ## cargo build --workspace --all-targets (dev profile; same features as `cargo test`, so lance builds once)
	$(CARGO) build --workspace --all-targets

demo: deps-system build ## Build, then run scripts/demo.sh (stores under .memlane-demo/)
	MEMLANE="$(MEMLANE)" bash scripts/demo.sh

test: deps build lint test-rust check-wasm test-python test-wasm ## Everything CI runs: fmt + clippy, cargo tests, wasm build and guard, Python tests, wasm and browser tests

test-rust: deps-system deps-python ## cargo test --workspace (dev profile; the object-storage tests start moto's S3 server from the venv)
	MEMLANE_S3_PYTHON="$(VENV)/bin/python" $(CARGO) test --workspace

python: deps-python build ## Build the abi3 wheel with maturin (dev profile, same target dir: no second lance build) and install it into the venv
	rm -rf "$(CARGO_TARGET_DIR)/wheels"
	"$(VENV)/bin/maturin" build --quiet -m bindings/python/Cargo.toml -o "$(CARGO_TARGET_DIR)/wheels"
	"$(VENV)/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$(CARGO_TARGET_DIR)"/wheels/memlane-*.whl
	echo "python: memlane installed into $(VENV)"

wheel: deps-python ## Release abi3 wheel into dist/ (release profile, symbols stripped: compiles lance optimised; not in CI)
	rm -f dist/memlane-*.whl
	"$(VENV)/bin/maturin" build --release --strip -m bindings/python/Cargo.toml -o dist
	ls -l dist/memlane-*.whl

install-python: wheel ## Install the release wheel into PYTHON's environment (default: the python3 on PATH), for use outside this repository
	"$(PYTHON_TARGET)" -m pip install --disable-pip-version-check --force-reinstall dist/memlane-*.whl
	echo "python: memlane (release build) installed for $(PYTHON_TARGET)"

test-python: python ## pytest: CLI interop (tests/python) and the Python package (bindings/python/tests), pylance/lancedb/chromadb as peers
	MEMLANE_BIN="$(MEMLANE)" "$(VENV)/bin/python" -m pytest -p no:cacheprovider tests/python bindings/python/tests

check-wasm: deps-browser ## Build memlane-wasm for wasm32 (Debian's toolchain), guard its dependency tree, generate the JS glue, hold the size budget
	bash scripts/check-wasm.sh

deps-browser: ## Install Node.js/npm and Chromium with apt-get if they are missing
	@missing=""
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"
	if [ -n "$$missing" ]; then
	  echo "deps: installing$$missing"
	  $(SUDO) apt-get update
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing
	else
	  echo "deps: node $$(node --version), npm $$(npm --version), $$(/usr/bin/chromium --version 2>/dev/null | head -1)"
	fi

PREVIEW_EXAMPLE = $(CARGO_TARGET_DIR)/preview-example
PREVIEW_PORT ?= 8765

test-wasm: deps-browser build check-wasm ## Node tests of the wasm API, native-vs-wasm review equality, the page in headless Chromium (screenshot kept)
	MEMLANE="$(MEMLANE)" bash scripts/preview-example.sh "$(PREVIEW_EXAMPLE)"
	MEMLANE_BIN="$(MEMLANE)" MEMLANE_PREVIEW_EXAMPLE="$(PREVIEW_EXAMPLE)" \
	  MEMLANE_SCREENSHOT="$(CARGO_TARGET_DIR)/preview-screenshot.png" \
	  node --test bindings/wasm/tests/

preview: deps-system build check-wasm ## Serve the migration preview page on localhost with a real model upgrade to review (example 05)
	MEMLANE="$(MEMLANE)" bash scripts/preview-example.sh bindings/wasm/www/example
	echo "preview: open http://127.0.0.1:$(PREVIEW_PORT)/ and press \"Load the example migration\", or drop your own files (Ctrl-C stops)"
	$(PYTHON) -m http.server $(PREVIEW_PORT) --bind 127.0.0.1 --directory bindings/wasm/www

deps-bench: deps-python ## pip install the benchmarks' peers (benches/requirements.txt: faiss-cpu) into the venv
	"$(VENV)/bin/python" -m pip install --quiet --disable-pip-version-check -r benches/requirements.txt

bench: deps-system deps-python deps-bench deps-browser check-wasm ## Benchmarks in release against peers in the same run: cargo bench (wasm vs native too), the Python package, the preview page; figures also in benches/results/ (slow cold build, not in CI)
	# --workspace: one feature set for every crate, so lance compiles once in release
	MEMLANE_BENCH_PYTHON="$(VENV)/bin/python" $(CARGO) bench --workspace --benches
	# the Python package from the same release build: `maturin build --release` resolves
	# features for memlane-py alone and would compile lance a second time, so the module
	# is taken from the workspace build and laid out as the wheel lays it out
	$(CARGO) build --release --workspace --all-targets
	rm -rf "$(CARGO_TARGET_DIR)/pybench"
	mkdir -p "$(CARGO_TARGET_DIR)/pybench"
	cp -r bindings/python/python/memlane "$(CARGO_TARGET_DIR)/pybench/"
	cp "$(CARGO_TARGET_DIR)/release/lib_memlane.so" "$(CARGO_TARGET_DIR)/pybench/memlane/_memlane.abi3.so"
	PYTHONPATH="$(CARGO_TARGET_DIR)/pybench" "$(VENV)/bin/python" benches/python/bench_python.py
	# vector index: build through a migration and indexed search vs lancedb (1M x 384, slow)
	PYTHONPATH="$(CARGO_TARGET_DIR)/pybench" "$(VENV)/bin/python" benches/python/bench_index.py
	# distributed re-embed on a local Ray cluster vs lance-ray add_columns, 1/2/4/8 actors (1M x 384)
	PYTHONPATH="$(CARGO_TARGET_DIR)/pybench" "$(VENV)/bin/python" benches/python/bench_ray.py
	# embedders: the http: embedder vs an asyncio+httpx peer (20k texts, 100 ms a request), proc: vs cmd:
	PYTHONPATH="$(CARGO_TARGET_DIR)/pybench" "$(VENV)/bin/python" benches/python/bench_embedders.py
	# the package as users install it: the release wheel (make wheel) in a directory of its own
	$(MAKE) wheel
	rm -rf "$(CARGO_TARGET_DIR)/wheelpkg"
	"$(VENV)/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$(CARGO_TARGET_DIR)/wheelpkg" dist/memlane-*.whl
	PYTHONPATH="$(CARGO_TARGET_DIR)/wheelpkg" "$(VENV)/bin/python" benches/python/bench_package.py
	# the preview page in headless Chromium (wasm build of check-wasm; dev CLI for the samples)
	$(MAKE) --no-print-directory build
	MEMLANE="$(MEMLANE)" bash scripts/preview-example.sh "$(PREVIEW_EXAMPLE)"
	node bindings/wasm/bench/page_bench.mjs "$(PREVIEW_EXAMPLE)" "$(MEMLANE)"

fmt: ## cargo fmt --all
	$(CARGO) fmt --all

lint: ## cargo fmt --check and clippy -D warnings on all targets
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# cargo-fuzz on the stable toolchain: RUSTC_BOOTSTRAP=1 lets stable take the -Z flags
# cargo-fuzz passes (sanitizer, coverage). fuzz/ is a workspace of its own with its own
# target dir, so the fuzz build (other RUSTFLAGS) never invalidates the main one.
FUZZ_SECONDS   ?= 60
FUZZ_TARGETS   ?= migration state review sample
FUZZ_SANITIZER ?= address
FUZZ_MAX_LEN   ?= 16384
CARGO_FUZZ_ROOT ?= $(HOME)/.cache/memlane/cargo-fuzz
FUZZ_TARGET_DIR ?= $(CARGO_TARGET_DIR)-fuzz

fuzz: ## Run each fuzz target FUZZ_SECONDS s (default 60; FUZZ_TARGETS, FUZZ_SANITIZER=none to skip ASan); corpora in fuzz/corpus/<target>, crashes in fuzz/artifacts/<target>
	@if [ ! -x "$(CARGO_FUZZ_ROOT)/bin/cargo-fuzz" ]; then
	  echo "fuzz: installing cargo-fuzz into $(CARGO_FUZZ_ROOT)"
	  $(CARGO) install cargo-fuzz --locked --root "$(CARGO_FUZZ_ROOT)"
	fi
	export PATH="$(CARGO_FUZZ_ROOT)/bin:$$PATH" RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$(FUZZ_TARGET_DIR)"
	cd fuzz
	for t in $(FUZZ_TARGETS); do
	  mkdir -p "corpus/$$t"
	  # seed from the committed seeds and, for the parser, every example migration file
	  seeds=(seeds/$$t/*)
	  if [ "$$t" = migration ]; then seeds+=(../migrations-examples/*/*.toml); fi
	  for f in "$${seeds[@]}"; do
	    name="$$(basename "$$(dirname "$$f")")-$$(basename "$$f")"
	    [ -e "corpus/$$t/$$name" ] || cp "$$f" "corpus/$$t/$$name"
	  done
	  args=(-max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
	  if [ -f "dicts/$$t.dict" ]; then args+=(-dict="dicts/$$t.dict"); fi
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s ($$(ls "corpus/$$t" | wc -l) corpus inputs)"
	  $(CARGO) fuzz run -s $(FUZZ_SANITIZER) "$$t" "corpus/$$t" -- "$${args[@]}"
	done

