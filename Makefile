# The README's two commands. Both create .venv (Python >= 3.12) on first use.
.PHONY: demo test lint bench docs

demo:
	bash scripts/bootstrap
	.venv/bin/bayestumor demo --out demo-output

# Lint first, then the tests on two workers; loadscope keeps each module (and its module-scoped
# fixtures, e.g. one calibration shared by several tests) on one worker, computed once.
# The report test renders report.html in headless Chromium: scripts/install-chromium installs
# Debian's package where it is missing (as root or with sudo); where it cannot, the tests still
# run and that one fails, saying what it needs.
test: lint
	bash scripts/install-chromium || echo "make test: no Chromium, so test_report_html_screenshot will fail" >&2
	.venv/bin/python -m pytest -n 2 --dist loadscope --durations=15

lint:
	bash scripts/bootstrap
	.venv/bin/ruff check bayestumor tests benchmarks
	.venv/bin/ruff format --check bayestumor tests benchmarks

bench:
	bash scripts/bootstrap
	.venv/bin/python benchmarks/forward.py

# The documentation site in site/: MkDocs with --strict (a warning fails the build); the
# notebooks are executed at small size by docs/hooks/notebooks.py.
docs:
	bash scripts/bootstrap
	@if [ ! -f .venv/.docs-stamp ] || [ pyproject.toml -nt .venv/.docs-stamp ]; then \
		.venv/bin/python -m pip install --quiet -e ".[docs]" && touch .venv/.docs-stamp; fi
	NO_MKDOCS_2_WARNING=1 JAX_PLATFORMS=cpu .venv/bin/mkdocs build --strict --site-dir site
