# rbee: four binaries in ./bin. Only llm-worker-rbee uses cgo (llama.cpp).
#
# Local builds target this CPU; the default flags of cgo give no SIMD and run
# 2.5x slower. A worker meant for other machines needs a portable target:
#   make build CPU=x86-64-v3
CPU ?= native
export CGO_CFLAGS := -O3 -march=$(CPU)
export CGO_CXXFLAGS := -O3 -march=$(CPU)

GO ?= go
PURE := ./cmd/rbee ./cmd/queen-rbee ./cmd/rbee-hive
MODEL ?= ../shared/models/stories260K.gguf
PROMPT ?= Once upon a time

.PHONY: build run test vet fuzz bench clean

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -o bin/ $(PURE)
	$(GO) build -o bin/ ./cmd/llm-worker-rbee

# The main job: build, then stream a story from a real model.
run: build
	./bin/rbee infer -m $(MODEL) --max-tokens 64 "$(PROMPT)"

# Everything CI checks: formatting, vet, the cgo-free build of the
# orchestration side, and the whole test suite with the race detector.
test: build
	@fmt=$$(gofmt -l cmd internal bench); if [ -n "$$fmt" ]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet $(PURE) ./internal/worker/... ./internal/generate/...
	$(GO) test -race -timeout 15m ./...

# Run each fuzz target for a while (FUZZTIME=1m by default).
FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/gguf
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./internal/sse
	$(GO) test -run '^$$' -fuzz '^FuzzTextOut$$' -fuzztime $(FUZZTIME) ./internal/generate
	$(GO) test -run '^$$' -fuzz '^FuzzInferenceRequest$$' -fuzztime $(FUZZTIME) ./internal/worker
	$(GO) test -run '^$$' -fuzz '^FuzzCreateJob$$' -fuzztime $(FUZZTIME) ./internal/jobs
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzzminimizetime 0 -fuzztime $(FUZZTIME) ./internal/modelref
	$(GO) test -run '^$$' -fuzz '^FuzzParseHives$$' -fuzztime $(FUZZTIME) ./internal/config

# Worker against the engine in-process on a 0.5B-parameter model.
bench:
	$(GO) run ./bench/worker

clean:
	rm -rf bin
