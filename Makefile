# firedrill — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
DRILL ?= pipeline
PROFILE ?= all
OUT ?= out
MEMCACHED ?= 3
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/firedrill-dev/firedrill/harness.Version=$(VERSION)

GO_SOURCES := $(shell find . -name '*.go' -not -path './bin/*' -not -name '*_test.go' 2>/dev/null) go.mod go.sum

.DEFAULT_GOAL := help
.PHONY: help build k6 firedrill images run drill env-up env-down test unit integration bench clean

help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  Variables: DRILL=$(DRILL) PROFILE=$(PROFILE) OUT=$(OUT) MEMCACHED=$(MEMCACHED)"

build: bin/firedrill bin/k6 ## Build bin/firedrill and bin/k6

k6: bin/k6 ## Build bin/k6: k6 v2 with every extension under extensions/

firedrill: bin/firedrill ## Build the firedrill CLI

bin/k6: $(GO_SOURCES)
	@echo "building bin/k6 (k6 v2 with firedrill's extensions; the first build takes a few minutes)"
	$(GO) build -o $@ ./cmd/k6

bin/firedrill: $(GO_SOURCES)
	$(GO) build -ldflags '$(LDFLAGS)' -o $@ ./cmd/firedrill

images: bin/firedrill ## Build the database, memcached and toxiproxy images offline (reused when present)
	bin/firedrill images

run: build ## Build what is missing and run the default drill; prints the report path
	bin/firedrill run $(DRILL) --out $(OUT) --memcached $(MEMCACHED)

drill: build ## Run one drill: make drill DRILL=name [PROFILE=protected]
	bin/firedrill run $(DRILL) --profile $(PROFILE) --out $(OUT) --memcached $(MEMCACHED)

env-up: bin/firedrill ## Start an environment and print its FIREDRILL_* endpoints; Ctrl-C removes it
	bin/firedrill env up --memcached $(MEMCACHED)

env-down: bin/firedrill ## Remove every firedrill environment
	bin/firedrill env down

unit: ## Unit tests (no Docker)
	$(GO) test ./...

integration: build images ## Integration tests against real containers, and the report in a real browser
	$(GO) test -tags integration,browser -p 1 -count=1 -timeout 45m ./...

test: build images ## Unit and integration tests against real containers (needs Docker; fails without it)
	$(GO) test -tags integration,browser -p 1 -count=1 -timeout 45m ./...
	@left=$$(docker ps -aq --filter label=firedrill.run; docker network ls -q --filter label=firedrill.run); \
	if [ -n "$$left" ]; then echo "left behind by the tests:"; echo "$$left"; exit 1; fi

bench: ## Benchmarks; figures are written under bench/
	$(GO) test -run '^$$' -bench . -benchmem ./reports/... | tee bench/reports.txt
	@if [ -x bench/cache/run.sh ]; then bench/cache/run.sh; fi

clean: ## Remove build output and local results (not the images)
	rm -rf bin $(OUT)
