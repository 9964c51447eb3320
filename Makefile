# ledgerlake — the two set-up commands are `make demo` and `make test`.
GO      ?= go
BIN     := bin/extract
# Fuzz targets run briefly in `make test`; longer with `make fuzz FUZZTIME=5m`. Minimising a new
# interesting input may take up to a minute by default and then overruns a short -fuzztime ("context
# deadline exceeded"), so minimisation is capped.
FUZZTIME ?= 10s
FUZZ_TARGETS := ./internal/typing:FuzzParseDecimal ./internal/typing:FuzzConvert ./internal/config:FuzzParse

.PHONY: build test unit fuzz demo lint clean

build:
	$(GO) build -o $(BIN) ./cmd/extract

## test: the whole suite, race detector on, then each fuzz target for $(FUZZTIME)
test: unit fuzz

unit:
	$(GO) test -race -count=1 ./...

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s || exit 1; \
	done

## demo: the built-in sandbox → Parquet → DuckDB, end to end
demo: build
	./$(BIN) demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin data/demo
