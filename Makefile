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
# The main job fetches a small real model from Hugging Face on first use;
# without internet: make run MODEL=../shared/models/stories260K.gguf
MODEL ?= hf:ggml-org/models-moved:tinyllamas/stories260K.gguf
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
# orchestration side, and the whole test suite with the race detector, never
# from the test cache (e2e runs programs the cache cannot see change).
test: build
	@fmt=$$(gofmt -l cmd internal bench e2e); if [ -n "$$fmt" ]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet $(PURE) ./internal/worker/... ./internal/generate/...
	$(GO) test -race -count=1 -timeout 15m ./...

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
	$(GO) test -run '^$$' -fuzz '^FuzzCheckFileName$$' -fuzztime $(FUZZTIME) ./internal/hf
	$(GO) test -run '^$$' -fuzz '^FuzzParseSHA256$$' -fuzztime $(FUZZTIME) ./internal/download
	$(GO) test -run '^$$' -fuzz '^FuzzParseSSHConfig$$' -fuzztime $(FUZZTIME) ./internal/config
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/chattemplate
	$(GO) test -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME) ./internal/chattemplate
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/toolcall
	$(GO) test -run '^$$' -fuzz '^FuzzStream$$' -fuzztime $(FUZZTIME) ./internal/toolcall
	$(GO) test -run '^$$' -fuzz '^FuzzScanner$$' -fuzztime $(FUZZTIME) ./internal/toolcall
	$(GO) test -run '^$$' -fuzz '^FuzzFromSchema$$' -fuzztime $(FUZZTIME) ./internal/grammar
	$(GO) test -run '^$$' -fuzz '^FuzzPrefixText$$' -fuzztime $(FUZZTIME) ./internal/queen/scheduling

# Every benchmark that runs without root or a GPU, each printing its table
# (bench/ssh needs root for its test host; bench/gpu/run.sh a GPU machine).
bench: build
	$(GO) run ./bench/worker
	$(GO) run ./bench/batch
	$(GO) run ./bench/e2e
	$(GO) run ./bench/openai
	$(GO) run ./bench/download
	$(GO) run ./bench/queenload
	$(GO) run ./bench/chat

clean:
	rm -rf bin

# GPU backends (README, "GPUs"). `make cuda` builds ggml's CUDA backend with
# CMake from the same ggml sources the worker compiles, into bin/lib where
# the worker looks, for the GPU architectures in CUDA_ARCHITECTURES (CMake's
# list, e.g. "90" or "86;89;90"; default: this machine's GPUs). It needs
# CMake and the CUDA toolkit; nothing else in rbee does.
CUDA_ARCHITECTURES ?= $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | tr -d '. ' | sort -u | paste -sd';' -)
JOBS ?= $(shell nproc)

.PHONY: cuda ggml-src gpu-bundle

cuda: ggml-src
	build/cuda/build.sh build/ggml-src build/cuda-build bin/lib "$(CUDA_ARCHITECTURES)" $(JOBS)

ggml-src:
	build/cuda/ggml-src.sh build/ggml-src

# Everything bench/gpu/run.sh needs on a GPU machine that has no Go: the
# ggml sources and portable (x86-64-v3) builds of the worker and of the
# benchmark, in build/gpu-bundle and build/ggml-src.
GPU_BUNDLE_FLAGS := CGO_CFLAGS="-O3 -march=x86-64-v3" CGO_CXXFLAGS="-O3 -march=x86-64-v3"
gpu-bundle: ggml-src
	@mkdir -p build/gpu-bundle/bin
	$(GPU_BUNDLE_FLAGS) $(GO) build -trimpath -ldflags="-s -w" -o build/gpu-bundle/bin/ ./cmd/llm-worker-rbee
	$(GPU_BUNDLE_FLAGS) $(GO) build -trimpath -ldflags="-s -w" -o build/gpu-bundle/bin/rbee-gpubench ./bench/gpu
	@du -sh build/gpu-bundle build/ggml-src
