# sluice — the front door. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
GOBIN ?= $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)
VERSITYGW_VERSION ?= v1.8.0
PROTOC_GEN_GO_VERSION ?= v1.36.12
PKGS ?= ./...
TEST_FLAGS ?= -race -shuffle=on -timeout 20m
DEMO_DIR ?= demo

.PHONY: help build test test-short lint proto proto-check tools demo bench fuzz clean screenshots

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

build: ## build bin/sluice
	$(GO) build -buildvcs=auto -o bin/sluice ./cmd/sluice

tools: ## install the test dependencies (versitygw S3 server, protoc-gen-go, Debian's chromium for the dashboard test and promtool for the alert rules)
	@command -v versitygw >/dev/null 2>&1 || { echo "installing versitygw $(VERSITYGW_VERSION)"; $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION); }
	@command -v promtool >/dev/null 2>&1 || { echo "installing promtool (apt: prometheus)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium (apt)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v protoc-gen-go >/dev/null 2>&1 || $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

test: tools ## run every test with the race detector (S3 tests use a real versitygw on loopback, the dashboard test headless chromium)
	SLUICE_REQUIRE_S3=1 SLUICE_REQUIRE_BROWSER=1 SLUICE_REQUIRE_PROMTOOL=1 $(GO) test $(TEST_FLAGS) $(PKGS)

screenshots: tools ## re-take the dashboard screenshots in docs/img (the browser test with SLUICE_UPDATE_SCREENSHOTS=1)
	SLUICE_REQUIRE_BROWSER=1 SLUICE_UPDATE_SCREENSHOTS=1 $(GO) test -count=1 -run TestDashboardInBrowser ./internal/ui/

STRESS_COUNT ?= 10

.PHONY: test-stress
test-stress: tools ## run `make test` STRESS_COUNT times (default 10; PKGS too), stopping at the first failure
	@passed=0; failed=0; \
	for i in $$(seq 1 $(STRESS_COUNT)); do \
	  echo "=== test-stress: run $$i of $(STRESS_COUNT)"; \
	  if $(MAKE) --no-print-directory test TEST_FLAGS='$(TEST_FLAGS) -count=1'; then \
	    passed=$$((passed + 1)); \
	  else \
	    failed=1; break; \
	  fi; \
	done; \
	echo "test-stress: $$passed passed, $$failed failed (of $(STRESS_COUNT) runs)"; \
	test $$failed -eq 0

.PHONY: test-faults
test-faults: tools ## fault tests: stages as processes under kill -9, nats/S3 outages, S3 errors, poison (docs/RELIABILITY.md)
	$(GO) test -tags faults -count=1 -timeout 25m ./test/faults/

test-short: ## quick tests without the race detector
	$(GO) test -short $(PKGS)

lint: ## go vet + gofmt check + generated code up to date
	$(GO) vet $(PKGS)
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	@$(MAKE) --no-print-directory proto-check

proto: ## regenerate Go code from proto/ (needs protoc: apt-get install protobuf-compiler)
	protoc -I proto --go_out=. --go_opt=module=github.com/sluice-dev/sluice proto/sluice/v1/*.proto

proto-check: ## fail when the generated code is stale
	@if command -v protoc >/dev/null 2>&1 && command -v protoc-gen-go >/dev/null 2>&1; then \
	  tmp=$$(mktemp -d); protoc -I proto --go_out=$$tmp --go_opt=module=github.com/sluice-dev/sluice proto/sluice/v1/*.proto && \
	  diff -r $$tmp/proto/sluicev1 proto/sluicev1 >/dev/null || { echo "proto/sluicev1 is stale: run make proto"; rm -rf $$tmp; exit 1; }; rm -rf $$tmp; \
	else echo "protoc or protoc-gen-go missing: proto check skipped"; fi

demo: build ## generate sample archives (with planted defects) and run the pipeline once with the data-quality rules of examples/partners-dq.yaml
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	./bin/sluice gen --out $(DEMO_DIR)/landing --days 3 --archives 2 --tables 6 --rows 3000 --defects
	./bin/sluice run --once --log-level warn --config examples/partners-dq.yaml --landing $(DEMO_DIR)/landing --out $(DEMO_DIR)/out --state $(DEMO_DIR)/state; \
	  rc=$$?; echo; echo "Parquet: $(DEMO_DIR)/out/<table>/process_date=*/batch_id=*/*.parquet   summaries: $(DEMO_DIR)/out/_summaries/   data quality: $(DEMO_DIR)/out/_dq/"; \
	  echo "rules suggested from the profiles: ./bin/sluice dq suggest --table hotel_rates --out $(DEMO_DIR)/out"; \
	  [ $$rc -eq 0 ] || [ $$rc -eq 2 ]  # 2: the planted defects were found (quarantined rows): that is the demo

bench: build ## end-to-end benchmark on a generated corpus (ANCHOR=1 also times DuckDB)
	./scripts/bench.sh

fuzz: ## longer fuzzing of the parsers (FUZZTIME=1m per target)
	./scripts/fuzz.sh $${FUZZTIME:-1m}

clean: ## remove build and demo output
	rm -rf bin $(DEMO_DIR) bench-out
