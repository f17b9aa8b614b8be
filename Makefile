# wagate — see README.md. Every target uses the Go toolchain and the generator versions
# pinned in go.mod.

GO      ?= go
PKGS    := ./...
BIN     := bin/wagate

.PHONY: all run build test test-deps lint generate check-generate clean bench

all: build

## run: start the server on the embedded SQLite database (GraphiQL on http://localhost:8080/)
run:
	$(GO) run .

## build: a static binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) .

## test: vet, format check, and every test with the race detector (SQLite always;
## PostgreSQL when reachable at TEST_DATABASE_URL or 127.0.0.1:5432, required when CI=true);
## then the memory bounds of idle subscribers, which hold only without the race detector
test: lint test-deps
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(GO) test -count=1 -run '^TestIdleSubscribersMemory$$' ./internal/httpapi

## test-deps: the pinned npm packages of the graphql-ws conformance test, when npm is present
## (without Node the test skips, or fails when CI=true)
GRAPHQL_WS_CLIENT := internal/httpapi/testdata/graphql-ws
test-deps:
	@if command -v npm >/dev/null; then npm ci --prefix $(GRAPHQL_WS_CLIENT) --no-audit --no-fund; \
	else echo "npm not found: the graphql-ws conformance test will be skipped (it fails when CI=true)"; fi

## lint: go vet and gofmt on hand-written code
lint:
	$(GO) vet $(PKGS)
	@files=$$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'); \
	unformatted=$$(gofmt -l $$files); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	@if git grep -nE '^(<<<<<<<|>>>>>>>) ' -- ':!*.sum' 2>/dev/null; then echo "merge conflict markers left"; exit 1; fi

## generate: ent first (it writes schema/ent.graphql), then gqlgen
generate:
	cd ent && $(GO) run -mod=mod entc.go
	$(GO) run github.com/99designs/gqlgen generate

## check-generate: generated code must match its sources
check-generate: generate
	@if [ -n "$$(git status --porcelain -- ent schema graph go.mod go.sum)" ]; then \
		echo "generated code is stale: run 'make generate' and commit"; \
		git status --porcelain -- ent schema graph go.mod go.sum; \
		git --no-pager diff --stat; exit 1; fi

## bench: build the server and the reference servers, then measure them side by side on a
## fresh PostgreSQL database (~5 min; BENCH_QUICK=1 for a ~1.5 min smoke run, BENCH_ONLY=B for one
## scenario). Not part of test.
## Results: stdout and bench/out/ (see BENCHMARKS.md)
bench:
	$(GO) run ./bench/run

clean:
	rm -rf bin data
