# smart-k8s-monitor. `make run` starts the whole pipeline in one process;
# `make test` runs every test. Both work on a fresh machine with only Go:
# every other tool is installed here, pinned, into ./bin.

SHELL          := /bin/bash
BIN            := $(CURDIR)/bin
export GOFLAGS := -buildvcs=false
GO             ?= go
VERSION        ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS        := -s -w -X github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/version.Version=$(VERSION)

# Pinned tools (see docs/toolchain.md for why these versions).
ALERTMANAGER_VERSION  := v0.31.1
GOLANGCI_LINT_VERSION := v2.15.0

# Every module of the workspace; `go test ./...` does not work at its root.
MODULES := $(patsubst $(CURDIR)/%,./%,$(shell $(GO) list -m -f '{{.Dir}}' 2>/dev/null))
BINARIES := smartmon ingest enricher advisor notifier

.PHONY: all build run demo test test-short bench soak lint fmt vet tools clean help
all: build

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

include $(wildcard mk/*.mk)

build: ## build all binaries into ./bin
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/smartmon $(foreach s,$(filter-out smartmon,$(BINARIES)),./services/$(s)/cmd/$(s))

run: ## build and run the whole pipeline in one process (embedded NATS in ./data)
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/smartmon ./cmd/smartmon
	$(BIN)/smartmon run

demo: ## post a realistic CrashLoopBackOff alert to the running pipeline
	@test -x $(BIN)/smartmon || $(GO) build -o $(BIN)/smartmon ./cmd/smartmon
	$(BIN)/smartmon send-test-alert

$(BIN)/alertmanager:
	@mkdir -p $(BIN)
	@echo "installing alertmanager $(ALERTMANAGER_VERSION) for the end-to-end test (about a minute cold)..."
	GOBIN=$(BIN) $(GO) install github.com/prometheus/alertmanager/cmd/alertmanager@$(ALERTMANAGER_VERSION)

$(BIN)/golangci-lint:
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

# Tools other areas' tests need (their targets live in mk/*.mk).
TEST_DEPS      += enricher-envtest-assets deploy-tools
TEST_ENV_EXTRA += KUBEBUILDER_ASSETS=$(ENRICHER_ENVTEST_ASSETS) SMARTMON_HELM=$(DEPLOY_HELM)
TEST_TOOLS := $(BIN)/alertmanager $(TEST_DEPS)
tools: $(TEST_TOOLS) ## install the pinned tools the tests use

# The tests get the tools through the environment; under CI=true a test
# that needs a missing tool fails instead of skipping.
TEST_ENV := SMARTMON_ALERTMANAGER=$(BIN)/alertmanager $(TEST_ENV_EXTRA)

test: $(TEST_TOOLS) ## run every test with the race detector (fuzz seed corpora included)
	$(TEST_ENV) $(GO) test -race -count=1 -timeout 30m $(addsuffix /...,$(MODULES))

# CI runs the suite once on a shared 2-core machine; a test that fails one
# run in twenty fails a submission now and then. Run it N times before
# trusting a change to timing, claims or consume loops.
N ?= 5
test-repeat: $(TEST_TOOLS) ## run every test N times (default 5), stop at the first failure
	@for i in $$(seq 1 $(N)); do echo "== run $$i of $(N)"; \
	  $(TEST_ENV) $(GO) test -race -count=1 -timeout 30m $(addsuffix /...,$(MODULES)) > $(BIN)/test-repeat.log 2>&1 \
	  || { grep -E -B2 -A20 -- '--- FAIL|^FAIL|panic:' $(BIN)/test-repeat.log | head -80; exit 1; }; done; echo "all $(N) runs passed"

test-short: ## unit tests only, no external tools
	$(GO) test -race -short $(addsuffix /...,$(MODULES))

bench: $(TEST_TOOLS) ## run the benchmarks (numbers go to docs/benchmarks.md)
	$(TEST_ENV) $(GO) test -run '^$$' -bench . -benchmem -timeout 60m $(addsuffix /...,$(MODULES))

soak: ## the full-size crash storm (1,000 notifications, kill -9 mid-storm)
	$(MAKE) ops-storm-long

lint: $(BIN)/golangci-lint ## gofmt, go vet and golangci-lint
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(addsuffix /...,$(MODULES))
	for m in $(MODULES); do (cd $$m && $(BIN)/golangci-lint run ./...) || exit 1; done

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

clean: ## remove binaries (keeps the pinned tools) and the local data dir
	rm -f $(addprefix $(BIN)/,$(BINARIES))
	rm -rf ./data
