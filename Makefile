# The README's two commands. Both create .venv (Python >= 3.12) on first use.
.PHONY: demo test lint bench

demo:
	bash scripts/bootstrap
	.venv/bin/bayestumor demo --out demo-output

test:
	bash scripts/bootstrap
	.venv/bin/python -m pytest -n 2 --durations=15

lint:
	bash scripts/bootstrap
	.venv/bin/ruff check bayestumor tests benchmarks
	.venv/bin/ruff format --check bayestumor tests benchmarks

bench:
	bash scripts/bootstrap
	.venv/bin/python benchmarks/forward.py
