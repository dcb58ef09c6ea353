# Shared by the SIP benchmark scripts: build, a daemon configured for load, /proc sampling,
# clean-up. Sourced, not run.
#
# Environment:
#   AGENT_BIN         daemon binary; when unset, `cargo build --release -p agent` runs first and
#                     $CARGO_TARGET_DIR/release/agent is used
#   CARGO_TARGET_DIR  where cargo builds (default: <repo>/target)
#   WHISPER_MODEL     ggml model (default: ~/.cache/agent/models/ggml-tiny.en.bin, as ./test prepares);
#                     the daemon needs one to keep calls up (without it every call is an apology)
#   BENCH_KEEP=1      keep the work folder (daemon log, SIPp stats, captures)

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
AGENT_BIN_GIVEN="${AGENT_BIN:+1}"
AGENT_BIN="${AGENT_BIN:-$TARGET_DIR/release/agent}"
WHISPER_MODEL="${WHISPER_MODEL:-${AGENT_CACHE_DIR:-$HOME/.cache/agent}/models/ggml-tiny.en.bin}"
CLK_TCK="$(getconf CLK_TCK)"

PIDS_TO_STOP=()
WORK=""

cleanup() {
  local pid
  for pid in "${PIDS_TO_STOP[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS_TO_STOP[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$WORK" && "${BENCH_KEEP:-0}" != 1 ]]; then
    rm -rf "$WORK"
  elif [[ -n "$WORK" ]]; then
    echo "work folder kept: $WORK" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() {
  command -v "$1" >/dev/null || { echo "missing: $1 ($2)" >&2; exit 2; }
}

build_agent() {
  if [[ -z "$AGENT_BIN_GIVEN" ]]; then
    echo "building: cargo build --release -p agent (CARGO_TARGET_DIR=$TARGET_DIR)" >&2
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p agent >&2)
  fi
  [[ -f "$WHISPER_MODEL" ]] || { echo "no whisper model at $WHISPER_MODEL (run scripts/test-models.sh)" >&2; exit 2; }
}

free_port() { # a free TCP+UDP port on loopback
  python3 - <<'EOF'
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        t.close(); u.close()
EOF
}

# start_daemon: writes $WORK/agent.toml and starts `agent serve`; sets DAEMON_PID, SIP_PORT,
# ADMIN. Logs at warn (per-call info lines would be part of what we measure otherwise).
start_daemon() {
  SIP_PORT="$(free_port)"
  ADMIN="127.0.0.1:$(free_port)"
  cat > "$WORK/agent.toml" <<EOF
[database]
url = "sqlite://$WORK/agent.db"
[admin]
listen = "$ADMIN"
[log]
level = "warn"
[sip]
listen = "127.0.0.1:$SIP_PORT"
rtp_port_min = 10000
rtp_port_max = 60000
[call]
max_concurrent = 100000
silence_timeout_secs = 3600
max_duration_secs = 7200
[stt]
model = "$WHISPER_MODEL"
threads = 1
[flows]
dir = "$BENCH_DIR/flows"
default = "bench"
[shutdown]
grace_secs = 2
EOF
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  "$AGENT_BIN" --config "$WORK/agent.toml" serve > "$WORK/daemon.log" 2>&1 &
  DAEMON_PID=$!
  PIDS_TO_STOP+=("$DAEMON_PID")
  local i
  for i in $(seq 1 300); do
    if curl -sf "http://$ADMIN/health" >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/daemon.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "daemon not healthy; log:" >&2
  cat "$WORK/daemon.log" >&2
  exit 1
}

stop_daemon() {
  kill -TERM "$DAEMON_PID" 2>/dev/null || true
  wait "$DAEMON_PID" 2>/dev/null || true
}

admin_key() {
  "$AGENT_BIN" --config "$WORK/agent.toml" keys create --tenant default --role supervisor | tail -1
}

# CPU ticks (user + system) a process has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Resident set, kB.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# Threads.
threads_of() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }

# A Prometheus value from the daemon (0 when absent).
metric() {
  curl -s "http://$ADMIN/metrics" | awk -v n="$1" '$1 == n {print $2; found=1} END {if (!found) print 0}'
}

# Waits (up to $2 s) until the daemon reports $1 active calls.
wait_active() {
  local want="$1" within="${2:-60}" i now
  for i in $(seq 1 $((within * 10))); do
    now="$(metric agent_calls_active)"
    [[ "${now%.*}" == "$want" ]] && return 0
    sleep 0.1
  done
  echo "daemon still has $(metric agent_calls_active) calls, wanted $want" >&2
  return 1
}

# Kernel UDP counters (whole machine): "InDatagrams RcvbufErrors OutDatagrams".
udp_counters() {
  awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) col[$i] = i; h = 1 } else print $col["InDatagrams"], $col["RcvbufErrors"], $col["OutDatagrams"] }' /proc/net/snmp
}

# Datagrams the kernel dropped on the UDP sockets process $1 owns (full receive buffers): the
# per-socket "drops" column of /proc/net/udp for the process's socket inodes. Sockets closed
# meanwhile take their count with them, so compare while the same calls are up.
udp_drops_of() {
  python3 - "$1" <<'PY'
import os, sys
pid = sys.argv[1]
inodes = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if link.startswith("socket:["):
        inodes.add(link[8:-1])
total = 0
for table in ("/proc/net/udp", "/proc/net/udp6"):
    try:
        lines = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        f = line.split()
        if len(f) >= 13 and f[9] in inodes:
            total += int(f[-1])
print(total)
PY
}

# µ-law noise for the caller side: quiet white noise (-50 dBFS), never speech, so the VAD runs
# on every frame but no utterance (and so no STT) is ever triggered.
make_noise() { # $1 = seconds
  need sox "apt-get install sox"
  sox -n -r 8000 -c 1 -e mu-law -t raw "$WORK/noise.ulaw" synth "$1" whitenoise vol 0.003
}

# The last line of a SIPp -trace_stat csv as NAME=VALUE lines for the columns we use.
sipp_final_stats() {
  python3 - "$1" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
head, last = rows[0], rows[-1]
want = ["TotalCallCreated", "SuccessfulCall(C)", "FailedCall(C)", "CallRate(C)",
        "FailedUnexpectedMessage(C)", "FailedTimeoutOnRecv(C)", "FailedMaxUDPRetrans(C)",
        "Retransmissions(C)", "ElapsedTime(C)"]
for w in want:
    if w in head:
        print(f"{w.replace('(C)', '')}={last[head.index(w)]}")
EOF
}
