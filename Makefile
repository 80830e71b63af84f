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

.PHONY: install generate check-generated lint run test test-lowest debian-packages bench bench-quick clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

$(BENCH_INSTALLED): $(INSTALLED)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,bench]'
	touch $@

# The same, on the lowest protobuf and gRPC our ranges allow (constraints-lowest.txt wins over
# constraints.txt for the packages it names).
LOWEST := .venv-lowest
LOWEST_INSTALLED := $(LOWEST)/.installed
$(LOWEST_INSTALLED): pyproject.toml constraints.txt constraints-lowest.txt
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install -q --upgrade pip
	$(PYTHON) -c 'import sys; name = lambda l: l.split("==")[0].lower(); \
		low = [l for l in open("constraints-lowest.txt") if "==" in l]; \
		sys.stdout.write("".join(l for l in open("constraints.txt") \
			if name(l) not in {name(x) for x in low}) + "".join(low))' > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/python -m pip install -q -c $(LOWEST)/constraints.txt -e '.[dev]'
	touch $@

# The Node client's exact packages (clients/node/package-lock.json); needs node >= 20 and npm.
$(NODE_INSTALLED): $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json $(NODE_CLIENT)/.npmrc
	cd $(NODE_CLIENT) && npm ci --prefer-offline
	touch $@

$(CLIENTS_INSTALLED): tests/clients/requirements.txt
	$(PYTHON) -m venv $(CLIENTS)
	$(CLIENTS)/bin/python -m pip install -q -r tests/clients/requirements.txt
	touch $@

# The stub generator's own environment (protos/requirements.txt says why its protoc is older).
PROTOC_VENV := .venv-protoc
PROTOC_PY := $(PROTOC_VENV)/bin/python
PROTOC_INSTALLED := $(PROTOC_VENV)/.installed

$(PROTOC_INSTALLED): protos/requirements.txt
	$(PYTHON) -m venv $(PROTOC_VENV)
	$(PROTOC_PY) -m pip install -q -r protos/requirements.txt
	touch $@

# Python stubs and their .pyi types from protos/; google/* protos come from the generator's
# grpcio-tools and googleapis-common-protos packages.
PROTOC = $(PROTOC_PY) -m grpc_tools.protoc -Iprotos \
	-I"$$($(PROTOC_PY) -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')" \
	-I"$$($(PROTOC_PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
STUBS := generated/files_api_stubs

# One descriptor image with imports, for buf (lint, and the Node stubs). No source info:
# the Node stubs then carry no comments, so none of the google/* files' text lands here.
IMAGE := $(VENV)/protos.binpb
$(IMAGE): $(PROTOS) $(PROTOC_INSTALLED)
	$(PROTOC) --include_imports --descriptor_set_out=$@ $(PROTOS)

# The stubs live as files_api_stubs.yandex...: protos/prefix_imports.py says why.
generate: $(PROTOC_INSTALLED) $(NODE_INSTALLED) $(IMAGE)
	rm -rf generated && mkdir -p $(STUBS)
	$(PROTOC) \
		--plugin=protoc-gen-mypy=$(PROTOC_VENV)/bin/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(PROTOC_VENV)/bin/protoc-gen-mypy_grpc \
		--python_out=$(STUBS) --mypy_out=$(STUBS) \
		--grpc_python_out=$(STUBS) --mypy_grpc_out=$(STUBS) \
		$(PROTOS)
	$(PROTOC_PY) protos/prefix_imports.py $(STUBS)
	cd $(NODE_CLIENT) && $(CURDIR)/$(VENV)/bin/buf generate $(CURDIR)/$(IMAGE) --path yandex

# Fails when the committed stubs differ from what `make generate` makes now.
check-generated: generate
	@test -z "$$(git status --porcelain -- generated $(NODE_CLIENT)/gen)" || \
		{ git status --porcelain -- generated $(NODE_CLIENT)/gen; \
		  echo "generated/ or $(NODE_CLIENT)/gen is stale: run make generate and commit"; exit 1; }

lint: $(INSTALLED) $(IMAGE)
	$(VENV)/bin/ruff check files_api server tests bench protos
	$(VENV)/bin/ruff format --check files_api server tests bench protos
	$(VENV)/bin/mypy files_api server bench tests protos
	$(VENV)/bin/buf lint $(IMAGE) --path yandex

run: $(INSTALLED)
	$(PY) -m files_api $(ARGS)

# Debian packages the tests run for real: PostgreSQL's server binaries (each run starts a
# throwaway cluster), h2load (the benchmark's smoke test), Prometheus with promtool (the
# metrics tests scrape the server with it) and Chromium (the console's tests drive it with
# Playwright). Installed when missing and this
# user may (root, or sudo without a password); otherwise one line says what to install.
DEBIAN_PACKAGES = $(if $(wildcard /usr/lib/postgresql/*/bin/initdb),,postgresql) \
	$(if $(shell command -v h2load),,nghttp2-client) \
	$(if $(wildcard /usr/bin/prometheus),,prometheus) \
	$(if $(wildcard /usr/bin/chromium),,chromium)

debian-packages:
	@set -e; missing="$(strip $(DEBIAN_PACKAGES))"; [ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ]; then sudo=; \
	elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "make test needs Debian's $$missing: apt-get install $$missing"; exit 1; fi; \
	$$sudo apt-get update -qq; \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing

# What tests/test_package.py's fresh environments install from: our dependencies resolved
# together with the SDK users run beside us (tests/package/requirements.txt), downloaded once.
WHEELHOUSE := .wheelhouse
WHEELHOUSE_READY := $(WHEELHOUSE)/.ready
$(WHEELHOUSE_READY): pyproject.toml tests/package/requirements.txt $(INSTALLED)
	rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)/self
	$(PY) -m pip wheel -q --no-deps -w $(WHEELHOUSE)/self .
	$(PY) -m pip download -q -d $(WHEELHOUSE) $(WHEELHOUSE)/self/*.whl \
		-r tests/package/requirements.txt "setuptools>=68" pip
	rm -rf $(WHEELHOUSE)/self $(WHEELHOUSE)/files_api-*.whl build
	touch $@

test: $(INSTALLED) $(CLIENTS_INSTALLED) $(NODE_INSTALLED) $(WHEELHOUSE_READY) debian-packages
	$(VENV)/bin/pytest $(ARGS)

# CI runs this too: the suite on the oldest protobuf and gRPC a user may have.
test-lowest: $(LOWEST_INSTALLED) $(CLIENTS_INSTALLED) $(NODE_INSTALLED) $(WHEELHOUSE_READY) debian-packages
	$(LOWEST)/bin/pytest $(ARGS)

# Our server against the bare gRPC floor (bench/floor.py), driven by h2load (apt-get install
# nghttp2-client); writes bench-results/ (results.json, report.md, bench.png). About 20
# minutes on 2 cores with REST PATCH, the 1,000 vs 1,000,000 files part (ARGS=--no-scale skips
# it), the SQLite floor (ARGS=--no-sqlite-floor skips it), PostgreSQL, 1 vs 2 replicas
# (ARGS=--no-postgres skips it) and small calls during 128 MiB uploads (ARGS=--no-stall skips
# it); see docs/performance.md.
bench: $(BENCH_INSTALLED)
	$(PY) -m bench.run $(ARGS)

bench-quick: $(BENCH_INSTALLED)
	$(PY) -m bench.run --quick $(ARGS)

clean:
	rm -rf $(VENV) $(LOWEST) $(CLIENTS) $(PROTOC_VENV) $(WHEELHOUSE) build dist $(NODE_CLIENT)/node_modules .pytest_cache .mypy_cache .ruff_cache
