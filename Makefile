# ledgerlake — the two set-up commands are `make demo` and `make test`.
GO      ?= go
BIN     := bin/extract
# Fuzz targets run briefly in `make test` (a few seconds each); longer with `make fuzz FUZZTIME=5000000x`.
# Budgets are execution counts, not durations: with a duration, Go 1.26's fuzz coordinator can report
# a spurious "context deadline exceeded" as the time runs out (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 50000x
FUZZ_TARGETS := ./internal/typing:FuzzParseDecimal ./internal/typing:FuzzShortDecimal ./internal/typing:FuzzConvert ./internal/typing:FuzzParseTimestamp ./internal/typing:FuzzNumberType ./internal/typing:FuzzTryAppend \
	./internal/config:FuzzParse ./internal/sqltext:FuzzSplitStatements ./internal/jsonrec:FuzzEachInArray ./internal/jsonrec:FuzzEachInReader ./internal/jsonrec:FuzzEachInEnvelope

.PHONY: build test unit fuzz demo bench lint clean

# extract --version names the checkout it was built from.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT  ?= $(shell git log -1 --format='%H (%cI)' 2>/dev/null)
LDFLAGS := -X 'main.linkedVersion=$(VERSION)' -X 'main.linkedCommit=$(COMMIT)'

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/extract

## test: lint, the whole suite with the race detector on, then each fuzz target for $(FUZZTIME)
test: lint unit fuzz

# internal/pipeline is named first: go test starts the packages' runs in the order they are listed, two
# at a time here, and the longest, started after the others, was the suite's long pole.
unit:
	$(GO) test -race -count=1 -timeout 30m ./internal/pipeline ./...

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 200x || exit 1; \
	done

## demo: the built-in sandbox → Parquet → DuckDB, end to end
demo: build
	./$(BIN) demo

## bench: full sync vs the API's lower bound, conversion vs DuckDB, peak RSS, incremental share
## (two scales, 20 ms latency, 1000 requests/s); results in $(BENCH_OUT) for comparison between commits
BENCH_SCALES ?= 1,10
BENCH_OUT    ?= bench.json
bench:
	$(GO) run ./cmd/bench --scales $(BENCH_SCALES) --out $(BENCH_OUT) $(BENCH_FLAGS)

# staticcheck is pinned here and installed by `go install pkg@version` into bin/tools (git-ignored), not
# by a `tool` line in go.mod: its own requirements (x/tools, x/mod, x/sync, go-cmp, toml) stay out of
# the product's module graph, so they can never move a version the binary is built with. The install
# is done once per checkout (a few seconds with a warm module cache) and again only when the pin moves.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := bin/tools/staticcheck

## lint: gofmt, go vet and staticcheck (also with the lake's optional backends' build tags)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags gcs,azblob ./internal/lake
	@$(STATICCHECK) -version 2>/dev/null | grep -qF '($(STATICCHECK_VERSION:v%=%))' || \
		GOBIN=$(CURDIR)/bin/tools $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags gcs,azblob ./internal/lake

clean:
	rm -rf bin data/demo
