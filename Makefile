# Collector: build, test and run the demo. `make help` lists the targets.

SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# containers_image_openpgp: no gpgme; the exclude tags keep cgo builds
# (-race) free of btrfs/devicemapper headers.
TAGS        := containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper
LDFLAGS     := -s -w -X github.com/collectorhq/collector/internal/buildinfo.Version=$(VERSION) \
               -X github.com/collectorhq/collector/internal/buildinfo.Commit=$(COMMIT)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHSTAT   := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
TEST_TIMEOUT ?= 40m
BIN         := bin

.PHONY: help build npm-deps test test-unit test-e2e lint bench bench-console images rpm demo demo-clean clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the static binaries into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/collector ./cmd/platform

release-tool: ## build the signing tool (cosign inside: slow, large)
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/collector-release

npm-deps: ## the tests' JavaScript (axe-core) from the npm registry, as packaging/npm/package-lock.json pins it
	$(GO) run ./internal/tools/npmfetch -lock packaging/npm/package-lock.json -dir .cache/npm

test: npm-deps ## run every test with the race detector, on real engines (root)
	$(GO) test -race -tags '$(TAGS)' -timeout $(TEST_TIMEOUT) -count=1 ./...

test-unit: ## the tests that need no root, engine, registry or browser (-short), in under two minutes
	$(GO) test -short -tags '$(TAGS)' -count=1 ./...

test-e2e: ## run the end-to-end suite in test/
	$(GO) test -tags '$(TAGS)' -timeout $(TEST_TIMEOUT) -count=1 -v ./test/...

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags '$(TAGS)' ./...
	$(GO) run $(STATICCHECK) -tags '$(TAGS)' ./...

bench: ## run the benchmarks, each against its baseline in the same run
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchtime 20x -count 5 ./engine/enginetest/ | tee bench-engine.txt
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchtime 2000x -count 3 ./queue/sqlite/ | tee bench-queue.txt
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'IngestHTTP|PickupLatency' -benchtime 1x -count 3 ./platform/ | tee bench-platform.txt
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench Heartbeat -count 3 ./platform/ | tee -a bench-platform.txt
	PLATFORM_LOAD=1 $(GO) test -tags '$(TAGS)' -run TestHeartbeatLoad -v -timeout 20m ./platform/ | tee -a bench-platform.txt
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchtime 1x -count 3 -timeout 40m ./test/ | tee bench-e2e.txt
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench ConsolePages -benchtime 1x -count 3 -timeout 30m ./platform/ | tee bench-console.txt

bench-console: ## console pages over a seeded store (10k collectors, 1M entities): p50/p95 per page vs /healthz
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench ConsolePages -benchtime 1x -count 3 -timeout 30m ./platform/ | tee bench-console.txt

images: ## build the container images FROM scratch with Podman (reproducible)
	VERSION=$(VERSION) COMMIT=$(COMMIT) packaging/images.sh

rpm: ## build the RPMs into dist/ with rpmbuild (collector, collector-platform, collector-selinux)
	VERSION=$(VERSION) COMMIT=$(COMMIT) GO=$(GO) packaging/rpm/build.sh dist

demo: ## run the whole system end to end on embedded defaults (root, Debian 12)
	scripts/demo.sh

demo-clean: ## remove everything the demo made
	scripts/demo.sh clean

clean: ## remove build output
	rm -rf $(BIN)
