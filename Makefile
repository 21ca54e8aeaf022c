# The two commands: `make demo` (set up and run the platform) and `make test` (run the suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
MYPY_PACKAGES := engine core accounts recommenders experiments serving analysis simulation offpolicy ops abplatform bench/report.py

.PHONY: demo test lint docs format serve migrate stop clean help

help:
	@echo "make demo    set up .venv, migrate, import the Online Retail demo data, create demo users, register and"
	@echo "             queue the demo recommender variants, run web + worker (the worker trains them)"
	@echo "make test    set up .venv with the dev tools and run the whole test suite"
	@echo "make lint    ruff check, ruff format --check, mypy (strict, django-stubs), import-linter contracts (.importlinter), no import"
	@echo "             cycles (scripts/check_import_cycles.py), and make docs"
	@echo "make docs    build the documentation site (mkdocs build --strict) into var/site; mkdocs serve to browse it"
	@echo "make stop    stop the embedded PostgreSQL (used when DATABASE_URL is unset; its data stays in var/)"
	@echo "make clean   stop it, then remove .venv and var/ (the embedded database, broker folder and models)"

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# gbstats (GrowthBook's statistics engine: the reference of the Bayesian tests and bench/bayesian_speed.py)
# declares numpy<2 and pandas<2, yet runs on our numpy 2 / pandas 2: --no-deps installs it without
# downgrading them. Its other import-time dependency, pydantic, is pinned in requirements-dev.txt.
$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps gbstats==0.8.0
	touch $@

migrate: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py import_dataset online-retail data/online-retail/online_retail.csv.gz --name online-retail --if-missing \
		--holdout-fraction 0.2
	$(PY) manage.py create_demo_users
	$(PY) manage.py register_variant data/demo/variants.yaml --if-missing --author ds
	$(PY) manage.py train --untrained
	$(PY) manage.py demo_experiment
	$(PY) manage.py collectstatic --noinput --verbosity 0
	./scripts/serve.sh

serve: $(VENV)/.runtime
	./scripts/serve.sh

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(wildcard $(MYPY_PACKAGES))
	$(VENV)/bin/lint-imports --no-cache
	$(PY) scripts/check_import_cycles.py
	$(MAKE) docs

# The documentation site (mkdocs.yml, docs/); strict, so a broken link or anchor fails. Material's
# end-of-life notice is silenced (see docs/reference/dependencies.md).
docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir var/site

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The embedded PostgreSQL keeps running between commands; stopping it needs only the standard library.
stop:
	$(PYTHON) abplatform/embedded_postgres.py stop

clean: stop
	rm -rf $(VENV) var
