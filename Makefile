# Flock. `make run` serves on the embedded defaults; `make test` runs every test.
GO        ?= go
TOOLS_BIN := $(CURDIR)/.tools/bin
NPM_BIN   := $(CURDIR)/tools/codegen/node_modules/.bin
export PATH := $(TOOLS_BIN):$(NPM_BIN):$(PATH)

BUF_VERSION          := v1.75.0
PROTOC_GEN_GO        := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_CONNECT   := connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.21.1
PROTOC_GEN_OPENAPI   := github.com/google/gnostic/cmd/protoc-gen-openapi@v0.7.1
STATICCHECK          := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Test knobs: TEST_FLAGS for extra go test flags (e.g. -run, -v).
TEST_FLAGS ?=

# The Go modules of the repository: the server, the Go SDK and the generated
# code (docs/development.md#modules). `./...` in one covers none of the others.
GO_MODULES := . client/go gen/go

WEB := client/web

.PHONY: web run build test test-short bench bench-streams bench-stream-flood bench-upload bench-rolling bench-load generate check-generate lint fmt tools proto-deps clean

run:
	$(GO) run ./server/cmd/flock

build:
	$(GO) build -o bin/flock ./server/cmd/flock

## test: every Go test, against SQLite always and against Postgres and Redis when
## they are reachable (FLOCK_TEST_DATABASE_URL, FLOCK_TEST_REDIS_URL; with CI=true
## they are required).
# RACE: the race detector for our code, not inside modernc.org/sqlite and
# its libc (SQLite's C translated to Go, a dependency we do not test): its
# pointer checks (checkptr) and access records there were 60 % of the
# suite's CPU (server package: 640 s of CPU before, 258 s after).
RACE := -race -gcflags=modernc.org/...=-race=false

test:
	@for m in $(GO_MODULES); do echo "go test $$m/..."; (cd $$m && $(GO) test $(RACE) -count=1 -p 2 -timeout 20m $(TEST_FLAGS) ./...) || exit 1; done

test-short:
	@for m in $(GO_MODULES); do (cd $$m && $(GO) test -short -count=1 ./...) || exit 1; done

## bench: go test benchmarks of the social core on both engines (see docs/performance.md).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s ./internal/post/

## bench-upload: a 1 GiB video upload's throughput and server peak memory, next to copying the file.
bench-upload: build
	$(GO) run ./bench/upload

## bench-streams: delay from an action to its arrival on 1,000 open streams, and memory per stream.
bench-streams: build
	$(GO) run ./bench/streamlat -streams 1000 -users 200 -actions 400

## bench-rolling: two instances (Postgres + Redis) behind deploy/nginx/flock.conf under load, restarted in turn and 5 s apart: failed requests, p50/p99 and stream events lost per phase (needs nginx).
bench-rolling: build
	$(GO) run ./bench/rolling

## bench-load: seeds a scale profile (small by default) and measures feed, post, like, GetMe... over REST and Connect: req/s, p50-p99, CPU per request incl. the database, peak RSS. BENCH_LOAD_FLAGS='-engine postgres -database-url ... -scenario feed,post -transport rest,connect' (see go doc ./bench/load).
BENCH_LOAD_FLAGS ?= -reuse -scenario feed,post,like,me -transport rest,connect -duration 15s
bench-load: build
	$(GO) run ./bench/load $(BENCH_LOAD_FLAGS)

## bench-stream-flood: one account tries 1,000 streams; other users' latency and server CPU, with and without them.
bench-stream-flood: build
	$(GO) run ./bench/streamflood -attempts 1000

tools: $(TOOLS_BIN)/buf $(TOOLS_BIN)/protoc-gen-go $(TOOLS_BIN)/protoc-gen-connect-go $(TOOLS_BIN)/protoc-gen-openapi $(TOOLS_BIN)/protoc-gen-flock-json $(NPM_BIN)/protoc-gen-es $(NPM_BIN)/protoc-gen-connect-query

$(TOOLS_BIN)/buf:
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS_BIN)/protoc-gen-go:
	GOBIN=$(TOOLS_BIN) $(GO) install $(PROTOC_GEN_GO)
$(TOOLS_BIN)/protoc-gen-connect-go:
	GOBIN=$(TOOLS_BIN) $(GO) install $(PROTOC_GEN_CONNECT)
$(TOOLS_BIN)/protoc-gen-openapi:
	GOBIN=$(TOOLS_BIN) $(GO) install $(PROTOC_GEN_OPENAPI)
# Ours (the AppendProtoJSON methods of gen/go), built from the source in the tree.
$(TOOLS_BIN)/protoc-gen-flock-json: $(wildcard tools/protoc-gen-flock-json/*.go) go.mod
	$(GO) build -o $@ ./tools/protoc-gen-flock-json
$(NPM_BIN)/protoc-gen-es $(NPM_BIN)/protoc-gen-connect-query: tools/codegen/package-lock.json
	npm ci --prefix tools/codegen --no-audit --no-fund

proto-deps: $(NPM_BIN)/protoc-gen-es
	./scripts/proto-deps.sh

## generate: gen/go, gen/ts and gen/openapi from proto/, and server/openapi.yaml (offline: Go module proxy and npm only).
generate: tools proto-deps
	buf lint
	# Everything under gen/ but the go.mod and go.sum of the module gen/go.
	find gen -mindepth 1 -depth ! -path gen/go ! -path gen/go/go.mod ! -path gen/go/go.sum -delete
	buf generate
	# server/openapi.yaml: the generated document with the bearer scheme, the plain-HTTP endpoints and the tag order.
	$(GO) run ./tools/openapioverlay -overlay tools/openapioverlay/overlay.yaml gen/openapi/openapi.yaml > server/openapi.yaml.tmp
	mv server/openapi.yaml.tmp server/openapi.yaml
	./scripts/apidocs.sh

## web: builds the web app (client/web) into client/web/dist, which the server
## embeds; commit the result like gen/ (make run needs only Go).
web: $(WEB)/node_modules/.package-lock.json
	cd $(WEB) && npm run build
$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json
	npm ci --prefix $(WEB) --no-audit --no-fund

## check-generate: fails when gen/ or the built web app (client/web/dist) is
## not what make generate and make web write.
check-generate: generate web
	@git add -N gen server/openapi.yaml server/apidocs $(WEB)/dist >/dev/null 2>&1 || true
	@if ! git diff --quiet -- gen server/openapi.yaml server/apidocs $(WEB)/dist; then \
		echo "gen/ or client/web/dist is stale: run make generate web and commit the result" >&2; \
		git diff --stat -- gen server/openapi.yaml server/apidocs $(WEB)/dist >&2; exit 1; fi

lint: proto-deps $(TOOLS_BIN)/buf
	test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); echo "gofmt: files above need formatting" >&2; exit 1; }
	@for m in $(GO_MODULES); do echo "vet, staticcheck, go mod tidy -diff: $$m"; (cd $$m && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./... && $(GO) mod tidy -diff) || exit 1; done
	buf lint

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '^gen/')

clean:
	rm -rf bin .tools .proto-deps
