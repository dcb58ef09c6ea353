#!/usr/bin/env bash
# Installs what building and running the daemon needs, on Debian, and nothing that is already
# there. Usage: scripts/deps.sh run|test
#   run   build tools and the C libraries the crates link (whisper.cpp, espeak-ng, libopus)
#   test  also the real SIP peers (SIPp, baresip, Kamailio), sox, the PostgreSQL client, a
#         PostgreSQL server when none answers on 127.0.0.1:5432, and Chromium (the dashboard's
#         headless browser test)
# Runs as root, or through sudo when not root. Idempotent.
set -euo pipefail

mode="${1:-run}"
log() { echo "deps: $*" >&2; }

as_root() {
	if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

packages=(build-essential cmake pkg-config libclang-dev libssl-dev libespeak-ng-dev espeak-ng-data
	python3 python3-pip unzip curl ca-certificates)
if [[ "$mode" == test ]]; then
	packages+=(sip-tester baresip-core kamailio sipsak sox espeak-ng postgresql-client iproute2
		chromium)
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	as_root apt-get update -qq
	as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# python3 may come from elsewhere (pyenv) with its own pip: only check that pip works.
if ! python3 -m pip --version >/dev/null 2>&1; then
	log "python3 has no pip; installing python3-pip"
	as_root apt-get install -y -qq python3-pip >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
	if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
		export PATH="$HOME/.cargo/bin:$PATH"
	else
		log "installing the Rust toolchain (rustup, stable)"
		curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
		export PATH="$HOME/.cargo/bin:$PATH"
	fi
fi

if [[ "$mode" == test ]]; then
	# ./test runs cargo fmt --check and cargo clippy first.
	if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
		log "adding the rustfmt and clippy components"
		rustup component add rustfmt clippy >/dev/null
	fi
	if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
		log "no PostgreSQL on 127.0.0.1:5432; installing and starting one"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
		cluster=$(ls /etc/postgresql | sort -V | tail -1)
		as_root pg_ctlcluster --skip-systemctl-redirect "$cluster" main start || true
		for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
	fi
fi
