# Entry points. Every target installs what it needs first (see local/bootstrap.sh),
# so `make local` and `make test` work on a fresh Debian or Ubuntu machine.

VENV := .venv
PY := $(VENV)/bin/python
STACK ?= kind
export PYTHONPATH := $(CURDIR)/apps:$(CURDIR)/infra:$(CURDIR)

.PHONY: deps local local-up local-down test protos render cluster-up cluster-down faults bench

deps: $(VENV)/.installed

$(VENV)/.installed: requirements.txt local/bootstrap.sh
	bash local/bootstrap.sh
	touch $@

# Run the whole pipeline on this machine under Locust for DURATION seconds (default 60).
local: deps
	$(PY) -m local run $(if $(DURATION),--duration $(DURATION))

local-up: deps
	$(PY) -m local up

local-down: deps
	$(PY) -m local down

test: deps
	$(PY) -m pytest

protos: deps
	$(PY) protos/generate.py
