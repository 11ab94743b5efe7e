# Two set-up commands: `make demo` and `make test`. Everything else is optional.
VENV ?= .venv
PY := $(VENV)/bin/python
NL := $(VENV)/bin/newsletter
SAMPLE ?= 2026-11-24

.PHONY: install demo test lint bench regen-golden update-caniemail clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The demo sends through the local outbox with a throwaway secret: nothing leaves the machine.
# It publishes the web copy to published/ (what `newsletter serve` serves), but the sample's
# archive_url is the fictional news.example.org, so the demo skips send's URL check.
# --editions: each reader gets the edition in their `language` attribute (one Arabic reader here).
demo: install
	$(NL) subscribers import subscribers/sample.csv
	$(NL) subscribers add layla.nasser@example.org --name "Layla Nasser" --attr language=ar
	$(NL) build $(SAMPLE)
	$(NL) build $(SAMPLE)-ar
	$(NL) publish $(SAMPLE)
	$(NL) publish $(SAMPLE)-ar
	NEWSLETTER_SECRET="$${NEWSLETTER_SECRET:-demo-secret-not-for-real-sends-0123}" \
	  $(NL) send $(SAMPLE) --segment everyone --transport outbox --yes --again --editions --skip-url-check

lint: install
	$(VENV)/bin/ruff check .

# Two pytest-xdist workers (the reference machine has two cores; the tests mostly wait on
# processes, servers and databases). TEST_WORKERS=0 runs the suite in one process. No
# .pytest_cache: the suite writes nothing into the repository but tests/artifacts/.
TEST_WORKERS ?= 2
test: install lint
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal

bench: install
	@for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

regen-golden: install
	$(PY) -m tests.golden

update-caniemail: install
	$(PY) scripts/update_caniemail.py

clean:
	rm -rf dist outbox published .newsletter tests/artifacts
