# The two set-up commands of the README, and a few helpers.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= train,export,cpu,faces,test

.PHONY: demo demo-unet demo-relight test bench gpu-check clean

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "edgelight needs Python 3.10 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[$(EXTRAS)]'
	@# The face models (detection, 468-point mesh, selfie segmentation) ship inside the mediapipe 0.10 wheel; only
	@# those files are used (train/facemesh.py runs them with LiteRT), so its clashing dependencies are not installed.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps mediapipe==0.10.21
	@# TensorRT's type stubs, for the mypy check of our TensorRT code; --no-deps because they depend on tensorrt itself.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps tensorrt-stubs==10.13.0.35.1
	@touch $@

## demo: train the edge low-light model briefly -> export (ONNX, FP16 ONNX, parity) -> enhance a generated clip (CPU)
demo: $(VENV)/.installed
	$(PY) -m train.lowlight train --preset edge --train-samples 800 --epochs 3 --log-dir runs --experiment-name demo --overwrite
	$(PY) -m export runs/demo --fp16 --out runs/demo/export
	rm -f runs/demo/clip.mp4
	$(PY) -m runtime demo-clip --out runs/demo/clip.mp4 --kind lowlight --frames 150
	$(PY) -m runtime enhance --model runs/demo/export --input runs/demo/clip.mp4 --output runs/demo/enhanced.mp4 \
		--overwrite --stats runs/demo/runtime_stats.json

## demo-unet: synthetic scenes -> train the edge relighting U-Net briefly -> checkpoint, grids, metrics (CPU)
demo-unet: $(VENV)/.installed
	$(PY) -m train.unet --preset edge --train-samples 160 --epochs 4 --out runs/demo-unet --overwrite

## demo-relight: people on a face mesh -> train the relighting decomposition briefly -> relight_edge -> export ->
## relight a generated clip of a real portrait, and score the model on that portrait (CPU)
demo-relight: $(VENV)/.installed
	$(PY) -m train.sfsnet --preset face --syn_data people --train-samples 400 --epochs 3 --log_dir runs/demo-relight/sfsnet \
		--overwrite --quiet
	$(PY) -m train.relight compose --edge --sfsnet runs/demo-relight/sfsnet --out runs/demo-relight/relight_edge.ckpt --overwrite
	$(PY) -m export runs/demo-relight/relight_edge.ckpt --fp16 --out runs/demo-relight/export
	rm -f runs/demo-relight/clip.mp4
	$(PY) -m runtime demo-clip --out runs/demo-relight/clip.mp4 --kind faces --frames 150
	$(PY) -m runtime relight --model runs/demo-relight/export --input runs/demo-relight/clip.mp4 --sh left \
		--output runs/demo-relight/relit.mp4 --overwrite
	$(PY) -m train.sfsnet real-eval --model runs/demo-relight/relight_edge.ckpt --out runs/demo-relight

## test: the test suite (CPU; GPU and TensorRT tests skip with their reason)
test: $(VENV)/.installed
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

## gpu-check: prove the GPU path on an NVIDIA machine in one run (needs_cuda tests, PyTorch FP32/FP16/CUDA graphs
## at 720p and 1080p, the overlapped executor end to end, FP16 parity) into runs/gpu-check. Uses the machine's own
## Python with PyTorch, or .venv where it exists (nothing installed). DRY_RUN=1: the same run simulated on the CPU.
gpu-check:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m benchmarks.gpu_check --out runs/gpu-check $(if $(filter 1 yes true,$(DRY_RUN)),--dry-run)

## bench: parameter counts and CPU forward times of the presets
bench: $(VENV)/.installed
	$(PY) -m benchmarks.model_cost

clean:
	rm -rf $(VENV) runs .pytest_cache
