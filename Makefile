# firedrill — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
DRILL ?= pipeline
PROFILE ?= all
OUT ?= out
MEMCACHED ?= 3
# make nightly: REPEATS runs of each drill and profile (3: the fewest with
# which the comparison can call a change significant), BASELINE a release
# label under BASELINES, a folder of results, latest or none.
REPEATS ?= 3
BASELINE ?= latest
BASELINES ?= baselines
GENERATORS ?= 1
# make lint: the build tags whose files it checks too (tests and benchmarks)
LINT_TAGS ?= integration,browser,bench
NIGHTLY_OUT ?= $(OUT)/nightly
NIGHTLY_FLAGS ?=
FIDELITY_OUT ?= $(OUT)/fidelity
# make images: IMAGES_FLAGS="--base debian:bookworm-slim" builds on a pulled
# base where a registry is reachable (CI); IMAGES_TAR is images-save/load's file.
IMAGES_FLAGS ?=
IMAGES_TAR ?= .cache/images/firedrill-images.tar
# VERSION: git describe, -dirty for a change outside bench/ (scripts/version.sh)
VERSION ?= $(shell sh scripts/version.sh)
LDFLAGS := -X github.com/firedrill-dev/firedrill/harness.Version=$(VERSION)

# The tools firedrill runs (go for the toxiproxy image, debootstrap) where
# Debian puts them, also when they are not on the caller's PATH (sudo, a
# non-login shell: /usr/sbin is not on a user's PATH).
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin

GO_SOURCES := $(shell find . -name '*.go' -not -path './bin/*' -not -name '*_test.go' 2>/dev/null) go.mod go.sum

.DEFAULT_GOAL := help
.PHONY: help build k6 firedrill host-deps images run drill env-up env-down test unit integration lint bench clean nightly fidelity baseline images-save images-load

help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  Variables: DRILL=$(DRILL) PROFILE=$(PROFILE) OUT=$(OUT) MEMCACHED=$(MEMCACHED)"
	@echo "  Nightly:   REPEATS=$(REPEATS) BASELINE=$(BASELINE) BASELINES=$(BASELINES) GENERATORS=$(GENERATORS) NIGHTLY_OUT=$(NIGHTLY_OUT)"

build: bin/firedrill bin/k6 ## Build bin/firedrill and bin/k6

k6: bin/k6 ## Build bin/k6: k6 v2 with every extension under extensions/

firedrill: bin/firedrill ## Build the firedrill CLI

bin/k6: $(GO_SOURCES)
	@echo "building bin/k6 (k6 v2 with firedrill's extensions; the first build takes a few minutes)"
	$(GO) build -o $@ ./cmd/k6

bin/firedrill: $(GO_SOURCES)
	$(GO) build -ldflags '$(LDFLAGS)' -o $@ ./cmd/firedrill

host-deps: bin/firedrill ## Install what a missing image's offline build needs on the host (debootstrap; as root with apt), else print the command and stop
	@scripts/host-deps.sh $(IMAGES_FLAGS)

images: bin/firedrill host-deps ## Build the database, memcached and toxiproxy images offline (reused when present) and the example service's v1 and v2
	bin/firedrill images $(IMAGES_FLAGS)

images-save: ## Save the firedrill images to IMAGES_TAR (for a CI cache)
	@mkdir -p $(dir $(IMAGES_TAR))
	docker save -o $(IMAGES_TAR) $$(docker images --filter 'reference=firedrill/*' --format '{{.Repository}}:{{.Tag}}')

images-load: ## Load the firedrill images from IMAGES_TAR when it exists (a CI cache)
	@if [ -f $(IMAGES_TAR) ]; then docker load -i $(IMAGES_TAR); else echo "no $(IMAGES_TAR): images will be built"; fi

run: build images ## Build what is missing (binaries, host tools, images) and run the default drill; prints the report path
	bin/firedrill run $(DRILL) --out $(OUT) --memcached $(MEMCACHED)

drill: build images ## Run one drill: make drill DRILL=name [PROFILE=protected]
	bin/firedrill run $(DRILL) --profile $(PROFILE) --out $(OUT) --memcached $(MEMCACHED)

env-up: bin/firedrill ## Start an environment and print its FIREDRILL_* endpoints; Ctrl-C removes it
	bin/firedrill env up --memcached $(MEMCACHED)

env-down: bin/firedrill ## Remove every firedrill environment
	bin/firedrill env down

nightly: build images ## Every drill (short form), every profile, REPEATS times; report, comparison with BASELINE, JUnit (exit 1 on a failure or regression)
	rm -rf $(NIGHTLY_OUT)
	bin/firedrill nightly --out $(NIGHTLY_OUT) --repeats $(REPEATS) --baseline $(BASELINE) --baselines $(BASELINES) \
		--generators $(GENERATORS) --memcached $(MEMCACHED) $(NIGHTLY_FLAGS)

fidelity: build images ## Every drill once at its default length, then the incidents' figures beside the drills' into README.md (firedrill fidelity)
	rm -rf $(FIDELITY_OUT)
	bin/firedrill nightly --full --repeats 1 --baseline none --out $(FIDELITY_OUT) --memcached $(MEMCACHED) $(NIGHTLY_FLAGS); \
	rc=$$?; bin/firedrill fidelity $(FIDELITY_OUT) -o $(FIDELITY_OUT)/fidelity.md --readme README.md && exit $$rc

baseline: bin/firedrill ## Save the last nightly's results as a release's baseline: make baseline RELEASE=v1.4
	@if [ -z "$(RELEASE)" ]; then echo "make baseline RELEASE=vX.Y"; exit 2; fi
	bin/firedrill baseline save --release $(RELEASE) --from $(NIGHTLY_OUT) --baselines $(BASELINES) --force

lint: ## gofmt, go vet and staticcheck (pinned in go.mod as a tool) over every build tag
	@bad=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$bad" ]; then echo "gofmt: these files need gofmt -w:"; echo "$$bad"; exit 1; fi
	$(GO) vet -tags $(LINT_TAGS) ./...
	$(GO) tool staticcheck -tags $(LINT_TAGS) ./...

unit: ## Unit tests (no Docker)
	$(GO) test ./...

integration: build images ## Integration tests against real containers, and the report in a real browser
	$(GO) test -tags integration,browser -p 1 -count=1 -timeout 45m ./...

test: build images ## Unit and integration tests against real containers (needs Docker; fails without it)
	$(GO) test -tags integration,browser -p 1 -count=1 -timeout 45m ./...
	@left=$$(docker ps -aq --filter label=firedrill.run; docker network ls -q --filter label=firedrill.run); \
	if [ -n "$$left" ]; then echo "left behind by the tests:"; echo "$$left"; exit 1; fi

bench: build images ## Benchmarks (needs Docker: one drills a real environment); figures are written under bench/
	$(GO) test -run '^$$' -bench . -benchmem ./reports/... | tee bench/reports.txt
	$(GO) test -tags bench -run '^TestGeneratorScaling$$' -count=1 -v ./harness/
	@if [ -x bench/cache/run.sh ]; then bench/cache/run.sh; fi

clean: ## Remove build output and local results (not the images)
	rm -rf bin $(OUT)
