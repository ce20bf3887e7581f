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

# Run the whole pipeline on this machine under Locust for DURATION seconds (default
# 60) with USERS users (default 20); TRAFFIC_FILE replays a JSON array of records.
# The summary goes to build/local-run.json.
LOCAL_RUN_ARGS = $(if $(DURATION),--duration $(DURATION))
LOCAL_RUN_ARGS += $(if $(USERS),--users $(USERS))
LOCAL_RUN_ARGS += $(if $(TRAFFIC_FILE),--traffic-file $(TRAFFIC_FILE))
local: deps
	$(PY) -m local run $(strip $(LOCAL_RUN_ARGS))

# Start the stack and leave it running; `make local-down` stops it.
local-up: deps
	$(PY) -m local up

local-down: deps
	$(PY) -m local down

# PYTEST_ARGS passes options through, e.g. PYTEST_ARGS="tests/e2e -x".
# pytest exits with 5 when it collected no tests; that fails the target too.
test: deps
	$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$status

protos: deps
	$(PY) protos/generate.py

# Write every Kubernetes object the Pulumi program declares for STACK (kind or
# existing) to build/manifests/STACK, through Pulumi mocks: no cluster, no CLI.
render: deps
	$(PY) -m covid_infra.render --stack $(STACK) --out build/manifests/$(STACK)

# Stand the stack up with `pulumi up`, then put RUN_TIME (default 2m) of Locust
# load through its ingress; the Locust summary goes to build/locust-STACK.json.
# Needs the Pulumi CLI and Docker, plus kind for the kind stack; `make deps`
# installs none of them.
cluster-up: deps
	@for tool in pulumi docker $(if $(filter kind,$(STACK)),kind); do \
		command -v $$tool >/dev/null || { echo "make cluster-up: $$tool is not on PATH" >&2; exit 1; }; \
	done
	pulumi up --stack $(STACK) --yes
	mkdir -p build
	$(VENV)/bin/locust -f load/locustfile.py --headless \
		--host "$$(pulumi stack output ingressUrl --stack $(STACK))" \
		--users $(or $(USERS),20) --spawn-rate $(or $(SPAWN_RATE),5) \
		--run-time $(or $(RUN_TIME),2m) --json > build/locust-$(STACK).json

# Delete everything the stack created; for the kind stack, the cluster too.
cluster-down:
	@command -v pulumi >/dev/null || { echo "make cluster-down: pulumi is not on PATH" >&2; exit 1; }
	pulumi destroy --stack $(STACK) --yes

# Load local stacks (one per Redis mode) while killing redis-sub and grpc-server,
# restarting redis-server and freezing SecantusDB, one fault at a time; prints
# sent, accepted, failed, stored and lost records per path and writes
# build/faults.json. FAULT_ARGS passes options, e.g. FAULT_ARGS="--modes streams".
faults: deps
	$(PY) -m local.faults $(FAULT_ARGS)

# Measure throughput, latency, lag, lost records and CPU per record of the local
# stack for each path alone, the 50/50 split, batches of 100 and a trivial
# endpoint, with wrk and Locust; BENCH_DURATION seconds of load per row (default
# 15). Writes build/bench.json and the table in docs/benchmarks.md.
bench: deps
	$(PY) bench/run.py $(if $(BENCH_DURATION),--duration $(BENCH_DURATION))
