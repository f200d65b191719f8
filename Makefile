# The backfill engine's everyday commands. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

GO ?= go
# Packages under test; override to narrow a run: make test PKG=./internal/sim/...
PKG ?= ./...
# Cache for tools the tests install outside the repository (jsforce for the conformance test).
export BACKFILL_TOOLS_CACHE ?= $(HOME)/.cache/backfill-tools

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_\/-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the backfill binary into bin/
	$(GO) build -o bin/backfill ./cmd/backfill

.PHONY: deps
deps: ## Make sure the test prerequisites (redis-server) are installed
	@./scripts/ensure-deps.sh

.PHONY: test
test: deps ## Run vet and every test (race detector on), against private redis-servers and the simulators
	$(GO) vet $(PKG)
	$(GO) test -race -count=1 -timeout 10m $(PKG)

# staticcheck is pinned so every machine reports the same findings; go run fetches it through the
# module proxy once and caches the build.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.7.0

.PHONY: verify
verify: ## Check formatting, go vet, staticcheck and that go.mod is tidy
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "not gofmt-formatted:" >&2; echo "$$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) mod tidy -diff

.PHONY: bench
bench: deps ## Run the benchmarks and print their numbers
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 60m $(PKG)

.PHONY: sim
sim: ## Run both simulators standalone (pass flags with ARGS="--users 5000")
	$(GO) run ./cmd/backfill sim $(ARGS)

.PHONY: demo
demo: ## Run a real backfill end to end on the embedded Redis and simulators (USERS=3000)
	$(GO) run ./cmd/backfill demo $(if $(USERS),--users $(USERS))

.PHONY: dev
dev: ## Run every role in one process on the embedded Redis and simulators
	$(GO) run ./cmd/backfill dev $(ARGS)

# Fuzz targets as name:package. Their seed corpora (testdata/fuzz) run in `make test`.
FUZZ_TARGETS := FuzzDecode:./internal/httpapi FuzzParse:./internal/mapping \
	FuzzQuoteString:./internal/sim/salesforcesim FuzzDecodePage:./internal/skilljar
FUZZTIME ?= 1m

.PHONY: fuzz
fuzz: ## Fuzz the request decoder, mapping parser, SOQL quoting and Skilljar page decoders, FUZZTIME (1m) each; failing inputs stay in testdata/fuzz as seeds
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzzing $${t%%:*} in $${t#*:} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) "$${t#*:}"; \
	done

.PHONY: chaos
chaos: deps ## Backfill USERS (20000) learners while KILLS (19) seeded SIGKILLs hit workers and Redis; SEED repeats a schedule
	BACKFILL_CHAOS_USERS=$(or $(USERS),20000) BACKFILL_CHAOS_KILLS=$(or $(KILLS),19) BACKFILL_CHAOS_TIMEOUT=55m \
		$(if $(SEED),BACKFILL_CHAOS_SEED=$(SEED)) \
		$(GO) test -race -count=1 -run '^TestChaos$$' -v -timeout 60m ./cmd/backfill
