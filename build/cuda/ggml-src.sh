#!/usr/bin/env bash
# Copies the ggml sources the worker compiles (ml/backend/ggml/ggml of the
# github.com/ollama/ollama module in go.mod) to DEST, for CMake: the module
# cache is read-only, and a GPU machine may have no Go toolchain. Only what
# the CUDA build reads is copied (no Go files, no other GPU backends).
set -euo pipefail
dest=${1:?usage: $0 DEST}
if ! command -v go >/dev/null && [ -d "$dest/src/ggml-cuda" ]; then
	echo "no Go here: using the ggml sources already in $dest ($(cat "$dest/SOURCE" 2>/dev/null))"
	exit 0
fi
mod=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)
src=$mod/ml/backend/ggml/ggml
[ -d "$src/src/ggml-cuda" ] || { echo "$src has no src/ggml-cuda" >&2; exit 1; }

tmp=$dest.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
cp -R "$src/include" "$src/cmake" "$src/src" "$tmp/"
cp "$src/LICENSE" "$tmp/" 2>/dev/null || true
chmod -R u+w "$tmp"
rm -rf "$tmp/src/ggml-metal" "$tmp/src/ggml-vulkan" "$tmp/src/ggml-hip" "$tmp/src/ggml-blas"
find "$tmp" -name '*.go' -delete
echo "$(go list -m -f '{{.Path}}@{{.Version}}' github.com/ollama/ollama)" >"$tmp/SOURCE"
rm -rf "$dest"
mv "$tmp" "$dest"
echo "copied $src to $dest ($(du -sh "$dest" | cut -f1))"
