# corral's two commands: `make start` and `make test`. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NODE_DEPS := node_modules/.package-lock.json

.PHONY: help start test test-unit test-cluster lint typecheck build tools deps clean

help:
	@echo "make start   run corral on embedded defaults (Temporal dev server + Web UI, Postgres, a worker)"
	@echo "make test    install what is missing and run every test"
	@echo "make test-unit  unit and time-skipping tests only (no shared servers): the fast loop"
	@echo "make test-cluster  the cluster tier (root): a real node, the project's images, docker compose"

$(NODE_DEPS): package.json package-lock.json
	@echo "[make] installing npm packages (npm ci)"
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_DEPS)

tools:
	@bash scripts/provision-tools.sh >/dev/null

# The compiled CLI and client package (dist/): bin/corral runs it.
build: deps
	npm run --silent build

start: deps build
	@echo "[make] provisioning the Temporal CLI (a no-op on a warm cache)"
	@bash scripts/provision-tools.sh temporal >/dev/null
	./bin/corral dev

typecheck: deps
	npx tsc -p tsconfig.json --noEmit

lint: deps
	npx eslint .
	npx prettier --check .
	npx knip --no-progress

test: deps typecheck lint build
	node --require tsx/cjs test/run.ts

test-unit: deps
	CORRAL_TEST_CONCURRENCY=$${CORRAL_TEST_CONCURRENCY:-2} node --require tsx/cjs test/run.ts test/unit/ test/time-skipping/

# The cluster tier (root): a real kubelet node, the project's images built for real, docker compose.
# One file at a time: one real node per machine, and the Docker engine's data-root is locked.
test-cluster: deps build
	@bash scripts/provision-tools.sh kube node helm temporal images compose >/dev/null
	node --require tsx/cjs --test --test-concurrency=1 test/cluster/*.cluster-test.ts

clean:
	rm -rf dist test-results
