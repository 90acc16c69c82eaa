#!/usr/bin/env bash
# Builds ggml's CUDA backend and puts it where llm-worker-rbee looks.
#
#   build/cuda/build.sh GGML_SRC BUILD_DIR DEST ARCHITECTURES [JOBS]
#
# ARCHITECTURES is CMake's CUDA architecture list ("90", "86;89;90"). DEST
# gets libggml-cuda.so, the libggml-base it needs, and rbee-backends.json
# saying what it was built for (a hive install checks that against a host's
# GPU). Used by `make cuda` and by bench/gpu/run.sh.
set -euo pipefail

if [ $# -lt 4 ]; then
	echo "usage: $0 GGML_SRC BUILD_DIR DEST ARCHITECTURES [JOBS]" >&2
	exit 2
fi
src=$1 build=$2 dest=$3 archs=$4 jobs=${5:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)
# CMake would take a relative GGML_SRC as relative to this folder.
src=$(cd "$src" && pwd) || { echo "no ggml sources at $1 (make ggml-src)" >&2; exit 1; }

if [ -z "$archs" ]; then
	echo "no CUDA architectures: no GPU was found by nvidia-smi; name them, e.g. make cuda CUDA_ARCHITECTURES=90" >&2
	exit 1
fi
case $archs in
*[!0-9a-z\;-]*)
	echo "CUDA architectures \"$archs\": want numbers like 90 or 86-real, separated by ';'" >&2
	exit 1
	;;
esac
for tool in cmake nvcc; do
	if ! command -v "$tool" >/dev/null; then
		echo "$tool not found: building the CUDA backend needs CMake and the CUDA toolkit (nvcc) on PATH" >&2
		exit 1
	fi
done

generator=()
if command -v ninja >/dev/null; then
	generator=(-G Ninja)
fi
cmake -S "$here" -B "$build" "${generator[@]}" \
	-DGGML_SRC="$src" \
	-DCMAKE_CUDA_ARCHITECTURES="$archs" \
	-DCMAKE_BUILD_TYPE=Release
cmake --build "$build" --target ggml-cuda -j "$jobs"

mkdir -p "$dest"
cp -fL "$build/lib/libggml-cuda.so" "$dest/libggml-cuda.so.tmp"
mv -f "$dest/libggml-cuda.so.tmp" "$dest/libggml-cuda.so"
# The base library, under the name the CUDA library asks for (its soname),
# as a file: links do not survive every copy. Only that one name, since the
# worker loads it first (to give it its logger) and a second copy under
# another name would be a second library.
rm -f "$dest"/libggml-base.so*
needed=$(readelf -d "$build/lib/libggml-cuda.so" 2>/dev/null | sed -n 's/.*NEEDED.*\[\(libggml-base[^]]*\)\].*/\1/p')
for name in ${needed:-libggml-base.so.0}; do
	cp -fL "$build/lib/$name" "$dest/$name"
done

version=$(nvcc --version | sed -n 's/.*release \([0-9][0-9.]*\).*/\1/p' | head -n1)
json_archs=$(printf '%s' "$archs" | sed 's/;/", "/g')
printf '{"cuda_architectures": ["%s"], "cuda_version": "%s"}\n' "$json_archs" "$version" >"$dest/rbee-backends.json"
echo "built $dest/libggml-cuda.so for CUDA architectures $archs (CUDA $version)"
