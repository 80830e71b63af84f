# Set-up and checks. `make run` and `make test` work on a fresh machine with Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
CLIENTS := .venv-clients
CLIENTS_INSTALLED := $(CLIENTS)/.installed
BENCH_INSTALLED := $(VENV)/.bench-installed
NODE_CLIENT := clients/node
NODE_INSTALLED := $(NODE_CLIENT)/node_modules/.installed
PROTOS := $(sort $(shell find protos -name '*.proto'))
ARGS ?=

.PHONY: install generate check-generated lint run test debian-packages bench bench-quick clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -c 'import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()["purelib"], "files_api_generated.pth").write_text("$(CURDIR)/generated\n")'
	touch $@

$(BENCH_INSTALLED): $(INSTALLED)
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

# The Node client's exact packages (clients/node/package-lock.json); needs node >= 20 and npm.
$(NODE_INSTALLED): $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json $(NODE_CLIENT)/.npmrc
	cd $(NODE_CLIENT) && npm ci --prefer-offline
	touch $@

$(CLIENTS_INSTALLED): tests/clients/requirements.txt
	$(PYTHON) -m venv $(CLIENTS)
	$(CLIENTS)/bin/python -m pip install -q -r tests/clients/requirements.txt
	touch $@

# Python stubs and their .pyi types from protos/; google/* protos come from the installed
# grpcio-tools and googleapis-common-protos packages.
PROTOC = $(PY) -m grpc_tools.protoc -Iprotos \
	-I"$$($(PY) -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')" \
	-I"$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# One descriptor image with imports, for buf (lint, and the Node stubs). No source info:
# the Node stubs then carry no comments, so none of the google/* files' text lands here.
IMAGE := $(VENV)/protos.binpb
$(IMAGE): $(PROTOS) $(INSTALLED)
	$(PROTOC) --include_imports --descriptor_set_out=$@ $(PROTOS)

generate: $(INSTALLED) $(NODE_INSTALLED) $(IMAGE)
	rm -rf generated && mkdir generated
	$(PROTOC) \
		--plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc \
		--python_out=generated --mypy_out=generated \
		--grpc_python_out=generated --mypy_grpc_out=generated \
		$(PROTOS)
	cd $(NODE_CLIENT) && $(CURDIR)/$(VENV)/bin/buf generate $(CURDIR)/$(IMAGE) --path yandex

# Fails when the committed stubs differ from what `make generate` makes now.
check-generated: generate
	@test -z "$$(git status --porcelain -- generated $(NODE_CLIENT)/gen)" || \
		{ git status --porcelain -- generated $(NODE_CLIENT)/gen; \
		  echo "generated/ or $(NODE_CLIENT)/gen is stale: run make generate and commit"; exit 1; }

lint: $(INSTALLED) $(IMAGE)
	$(VENV)/bin/ruff check server tests bench
	$(VENV)/bin/ruff format --check server tests bench
	$(VENV)/bin/mypy server bench tests
	$(VENV)/bin/buf lint $(IMAGE) --path yandex

run: $(INSTALLED)
	$(PY) -m server $(ARGS)

# Debian packages the tests run for real: PostgreSQL's server binaries (each run starts a
# throwaway cluster) and h2load (the benchmark's smoke test). Installed when missing and this
# user may (root, or sudo without a password); otherwise one line says what to install.
DEBIAN_PACKAGES = $(if $(wildcard /usr/lib/postgresql/*/bin/initdb),,postgresql) \
	$(if $(shell command -v h2load),,nghttp2-client)

debian-packages:
	@set -e; missing="$(strip $(DEBIAN_PACKAGES))"; [ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ]; then sudo=; \
	elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "make test needs Debian's $$missing: apt-get install $$missing"; exit 1; fi; \
	$$sudo apt-get update -qq; \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing

test: $(INSTALLED) $(CLIENTS_INSTALLED) $(NODE_INSTALLED) debian-packages
	$(VENV)/bin/pytest $(ARGS)

# Our server against the bare gRPC floor (bench/floor.py), driven by h2load (apt-get install
# nghttp2-client); writes bench-results/ (results.json, report.md, bench.png). About 14.5
# minutes on 2 cores with REST PATCH, the 1,000 vs 1,000,000 files part (ARGS=--no-scale skips
# it), the SQLite floor (ARGS=--no-sqlite-floor skips it), PostgreSQL, 1 vs 2 replicas
# (ARGS=--no-postgres skips it) and small calls during 128 MiB uploads (ARGS=--no-stall skips
# it); see docs/performance.md.
bench: $(BENCH_INSTALLED)
	$(PY) -m bench.run $(ARGS)

bench-quick: $(BENCH_INSTALLED)
	$(PY) -m bench.run --quick $(ARGS)

clean:
	rm -rf $(VENV) $(CLIENTS) $(NODE_CLIENT)/node_modules .pytest_cache .mypy_cache .ruff_cache
