# Two entry points for a fresh machine: `make run` and `make test`.
PY := .venv/bin/python
PIP := .venv/bin/pip

.PHONY: install run test index bench eval

.venv/installed: pyproject.toml requirements.txt
	python3 -m venv .venv
	# torch first and pinned: 2.13.0 is the local CPU build; anything else pulls CUDA packages.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -e ".[test]"
	touch $@

install: .venv/installed

index: install
	HF_HUB_OFFLINE=1 $(PY) -m qa index

run: index
	HF_HUB_OFFLINE=1 $(PY) app.py

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

eval: index
	HF_HUB_OFFLINE=1 $(PY) -m qa eval tests/data/seed_questions.jsonl

bench: index
	HF_HUB_OFFLINE=1 $(PY) bench/run_all.py
