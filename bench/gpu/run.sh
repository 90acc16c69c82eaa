#!/usr/bin/env bash
# The GPU check (README, "GPUs"): on a machine with an NVIDIA GPU, CMake and
# the CUDA toolkit, but no Go and no network, it builds ggml's CUDA backend
# from the carried sources, then measures prompt and decode tokens/s of
#   - llama.cpp in-process on the GPU (the engine),
#   - llm-worker-rbee over HTTP with every layer on the GPU,
#   - the same worker on the machine's CPU cores,
# on a Qwen2-0.5B-shape Q8_0 and a Llama-3.2-1B-shape Q4_0 model with
# random weights, and prints one table: worker/engine decode ratio (goal
# >= 0.97) and the share of the GPU's memory-bandwidth ceiling.
#
# Prepare here (a machine with Go):   make gpu-bundle
# Run there, from the repository root: bash bench/gpu/run.sh
# carrying build/ggml-src and build/gpu-bundle.
#
# Every step has a time limit inside an overall budget (BUDGET seconds,
# default 540); a failed step is reported and the others go on; the table
# is printed whatever happened. The log, the table and the raw results go
# to $OUT when set (else /tmp/rbee-gpu).
set -euo pipefail
cd "$(dirname "$0")/../.."

budget=${BUDGET:-540}
out=${OUT:-/tmp/rbee-gpu}
mkdir -p "$out"
res=$(mktemp -d /tmp/rbee-gpu-results.XXXXXX)
models=/tmp/rbee-gpu-models
bin=$PWD/build/gpu-bundle/bin
bench=$bin/rbee-gpubench
worker=$bin/llm-worker-rbee
qwen=qwen2-0.5b-q8_0.gguf
llama=llama3.2-1b-q4_0.gguf
export models bin bench worker qwen
failed=()

exec > >(tee -a "$out/gpu-check.log") 2>&1
teepid=$!

finish() {
	echo
	echo "=== results (after ${SECONDS}s)"
	if [ -x "$bench" ]; then
		"$bench" table "$res" | tee "$out/table.md" || true
	fi
	cat "$res"/*.json >"$out/results.json" 2>/dev/null || true
	echo
	echo "failed or skipped steps: ${failed[*]:-none}"
	exec >&- 2>&-
	wait "$teepid" 2>/dev/null || true
}
trap finish EXIT

# step NAME LIMIT CMD...: runs CMD with a time limit, never past the budget.
step() {
	local name=$1 limit=$2
	shift 2
	local left=$((budget - SECONDS - 15))
	echo
	if [ "$left" -lt 20 ]; then
		echo "=== $name: skipped, out of time (${SECONDS}s of ${budget}s used)"
		failed+=("$name (skipped)")
		return 0
	fi
	[ "$limit" -gt "$left" ] && limit=$left
	echo "=== $name (limit ${limit}s, at ${SECONDS}s)"
	# rbee-gpubench stops itself a little earlier, so that it still writes
	# a result saying it ran out of time.
	export STEP_DEADLINE_S=$((limit > 20 ? limit - 8 : limit))
	local start=$SECONDS rc=0
	if declare -F "$1" >/dev/null; then # a function of this script: run it in a bash of its own
		timeout --kill-after=5 "$limit" bash -c "set -euo pipefail; $(declare -f "$1"); $1" || rc=$?
	else
		timeout --kill-after=5 "$limit" "$@" || rc=$?
	fi
	if [ "$rc" -eq 0 ]; then
		echo "=== $name: ok in $((SECONDS - start))s"
	else
		[ "$rc" -eq 124 ] && echo "=== $name: timed out"
		echo "=== $name: FAILED (exit $rc) after $((SECONDS - start))s"
		failed+=("$name")
	fi
}

# Tools in the places a CUDA image keeps them, when not on PATH.
[ -d /usr/local/cuda/bin ] && PATH=$PATH:/usr/local/cuda/bin
for mod in cmake ninja; do
	if ! command -v "$mod" >/dev/null && command -v python3 >/dev/null; then
		dir=$(python3 -c "import $mod, os; print(getattr($mod, 'CMAKE_BIN_DIR', None) or getattr($mod, 'BIN_DIR', ''))" 2>/dev/null || true)
		[ -n "$dir" ] && PATH=$PATH:$dir
	fi
done
export PATH

toolchain() {
	set +e
	uname -a
	echo "cores: $(nproc)"
	ldd --version | head -n1
	nvidia-smi
	nvidia-smi --query-gpu=index,name,memory.total,memory.free,compute_cap,driver_version --format=csv
	echo "nvcc: $(command -v nvcc)"
	nvcc --version
	echo "cmake: $(command -v cmake)"
	cmake --version | head -n1
	echo "ninja: $(command -v ninja) $(ninja --version 2>/dev/null)"
	gcc --version | head -n1
	ldconfig -p | grep -E 'libcuda\.so|libcudart|libcublas' | head
	cat build/ggml-src/SOURCE
	ls -la "$bin"
	set -e
	for f in "$bench" "$worker" build/ggml-src/src/ggml-cuda/CMakeLists.txt; do
		[ -e "$f" ] || { echo "missing $f: run make gpu-bundle on a machine with Go and carry build/ggml-src and build/gpu-bundle"; return 1; }
	done
	command -v nvcc >/dev/null && command -v cmake >/dev/null && command -v nvidia-smi >/dev/null
}
step toolchain 60 toolchain

arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '. ' || true)
echo "CUDA architecture of GPU 0: $arch"
step "build CUDA backend (sm_$arch)" 360 build/cuda/build.sh build/ggml-src /tmp/rbee-cuda-build "$bin/lib" "$arch" "$(nproc)"
ls -la "$bin/lib" || true
[ -f "$bin/lib/libggml-cuda.so" ] && ldd "$bin/lib/libggml-cuda.so" | grep -E 'cuda|cublas|ggml|not found' || true

step "devices" 60 "$bench" devices
step "worker --list-devices" 60 "$worker" --list-devices
step "write models" 120 "$bench" models "$models"

for m in $qwen $llama; do
	# On the GPU a run takes a fraction of a second: more and longer runs
	# make the worker/engine ratio steadier.
	step "engine $m cuda:0" 120 "$bench" engine -model "$models/$m" -device cuda:0 -runs 5 -tokens 256 -out "$res/$m-1-engine-gpu.json"
	step "worker $m cuda:0" 150 "$bench" worker -bin "$worker" -model "$models/$m" -device cuda:0 -runs 5 -tokens 256 -out "$res/$m-2-worker-gpu.json"
done

# A GPU that does not exist, and a broken backend library: one line, non-zero.
bad_device() {
	local errs rc
	mkdir -p /tmp/rbee-broken-lib
	printf 'not a library\n%.0s' $(seq 20) >/tmp/rbee-broken-lib/libggml-cuda.so
	for args in "--device cuda:9" "--device cuda:0 --gpu-layers -5"; do
		rc=0
		errs=$("$worker" --model "$models/$qwen" $args 2>&1 >/dev/null) || rc=$?
		echo "$args -> exit $rc: $errs"
		[ "$rc" -ne 0 ] && [ "$(printf '%s\n' "$errs" | wc -l)" -eq 1 ] || return 1
	done
	rc=0
	errs=$(RBEE_BACKEND_PATH=/tmp/rbee-broken-lib "$worker" --model "$models/$qwen" --device cuda:0 2>&1 >/dev/null) || rc=$?
	echo "broken libggml-cuda.so -> exit $rc: $errs"
	[ "$rc" -ne 0 ] && [ "$(printf '%s\n' "$errs" | wc -l)" -eq 1 ]
}
step "bad device and broken library" 60 bad_device

for m in $qwen $llama; do
	step "worker $m cpu" 150 "$bench" worker -bin "$worker" -model "$models/$m" -device cpu -runs 2 -out "$res/$m-3-worker-cpu.json"
done
step "worker $qwen cuda:0 --gpu-layers 12" 90 "$bench" worker -bin "$worker" -model "$models/$qwen" -device cuda:0 -gpu-layers 12 -runs 1 -out "$res/$qwen-4-worker-partial.json"
