# Two entry points for a fresh machine: `make run` (the runtime alone) and `make test` (plus test tools).
PY := .venv/bin/python
PIP := .venv/bin/pip

.PHONY: install install-dev run test index bench eval

.venv/runtime: pyproject.toml requirements.txt
	python3 -m venv .venv
	# torch first and pinned: 2.13.0 is the local CPU build; anything else pulls CUDA packages.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -e .
	touch $@

.venv/dev: .venv/runtime requirements-dev.txt
	$(PIP) install -q -r requirements-dev.txt
	touch $@

install: .venv/runtime

install-dev: .venv/dev

index: install
	HF_HUB_OFFLINE=1 $(PY) -m qa index

run: index
	HF_HUB_OFFLINE=1 $(PY) app.py

test: install-dev
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

eval: index
	HF_HUB_OFFLINE=1 $(PY) -m qa eval tests/data/seed_questions.jsonl

bench: index
	HF_HUB_OFFLINE=1 $(PY) bench/run_all.py
