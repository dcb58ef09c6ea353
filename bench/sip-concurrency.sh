#!/usr/bin/env bash
# Concurrency benchmark: hold N simultaneous calls with RTP flowing both ways and measure what
# each call costs the daemon. SIPp places N calls (RAMP calls/s) that each stream looped quiet
# noise (µ-law, -50 dBFS: the VAD runs on every 20 ms frame, no utterance ever starts, so no
# STT) while the daemon plays its greeting and then sends a silence frame every 20 ms. Once all
# N calls are up and the greetings are over, the daemon's CPU is measured over WINDOW_SECS
# (/proc/PID/stat utime+stime) with its RSS (/proc/PID/status VmRSS); the idle daemon's figures
# are subtracted and the rest divided by N. Media is checked too: the machine's UDP datagram
# rate over the window against the 100 packets/s per call expected (50 each way), datagrams the
# kernel dropped on the daemon's own sockets (full receive buffers), and after hang-up the
# packets per second the daemon says each call received (50 expected).
#
# Usage: bench/sip-concurrency.sh [N…]      (default: 100 500 1000 1500 2000)
#   RAMP=50          calls/s while setting up
#   WINDOW_SECS=20   measurement window
#   SETTLE_SECS=5    after the last call is up, before measuring (greetings end)
#   PERF_SECS=0      >0: `perf record` the daemon for that long during the last N's window
# Needs: sipp (sip-tester), sox, python3, curl.
source "$(dirname "$0")/lib.sh"

NS=("$@")
[[ ${#NS[@]} -gt 0 ]] || NS=(100 500 1000 1500 2000)
RAMP="${RAMP:-50}"
WINDOW_SECS="${WINDOW_SECS:-20}"
SETTLE_SECS="${SETTLE_SECS:-5}"
PERF_SECS="${PERF_SECS:-0}"

need sipp "apt-get install sip-tester"
need python3 "apt-get install python3"
need curl "apt-get install curl"
build_agent
WORK="$(mktemp -d /tmp/sip-conc.XXXXXX)"
make_noise 10
cp "$BENCH_DIR/sipp/held_call.xml" "$WORK/"
start_daemon
KEY="$(admin_key)"
echo "daemon pid $DAEMON_PID, SIP 127.0.0.1:$SIP_PORT; $(nproc) CPUs; window ${WINDOW_SECS}s"

# Idle baseline (model loaded, no call).
sleep 2
b0="$(cpu_ticks "$DAEMON_PID")"
sleep "$WINDOW_SECS"
b1="$(cpu_ticks "$DAEMON_PID")"
base_cpu="$(echo "($b1 - $b0) / $CLK_TCK / $WINDOW_SECS * 100" | bc -l)"
base_rss="$(rss_kb "$DAEMON_PID")"
printf 'idle: CPU %.2f %% of a core, RSS %d kB, %d threads\n' "$base_cpu" "$base_rss" "$(threads_of "$DAEMON_PID")"
printf '%6s %6s | %8s %10s | %9s %9s %10s | %9s %8s %8s | %9s %6s\n' \
  N up daemon% "core%/call" RSS_MB "RSS+MB" "kB/call" "udp_pps" expect drops "rx/s/call" failed

for n in "${NS[@]}"; do
  step="$WORK/n-$n"
  mkdir -p "$step"
  cp "$WORK/noise.ulaw" "$step/"
  ramp_secs=$(( (n + RAMP - 1) / RAMP ))
  hold_ms=$(( (ramp_secs + SETTLE_SECS + WINDOW_SECS + PERF_SECS + 15) * 1000 ))
  (
    cd "$step"
    exec sipp "127.0.0.1:$SIP_PORT" -sf "$WORK/held_call.xml" -s agent -i 127.0.0.1 \
      -p "$(free_port)" -mp "$(free_port)" -r "$RAMP" -m "$n" -l "$n" -d "$hold_ms" \
      -nostdin -timeout $(( hold_ms / 1000 + ramp_secs + 120 ))s -trace_stat -fd 1 \
      -trace_err -error_file errors.log -max_socket 65000
  ) > "$step/sipp.log" 2>&1 &
  sipp_pid=$!
  up=0
  if wait_active "$n" $((ramp_secs * 3 + 60)); then up="$n"; else up="$(metric agent_calls_active)"; fi
  sleep "$SETTLE_SECS"
  u0="$(udp_counters)"
  x0="$(udp_drops_of "$DAEMON_PID")"
  d0="$(cpu_ticks "$DAEMON_PID")"
  s0="$(cpu_ticks "$sipp_pid")"
  t0="$(date +%s.%N)"
  if [[ "$PERF_SECS" -gt 0 && "$n" == "${NS[-1]}" ]] && command -v perf >/dev/null; then
    perf record -F 499 -g -p "$DAEMON_PID" -o "$WORK/perf-$n.data" -- sleep "$PERF_SECS" > /dev/null 2>&1 || true
    sleep $(( WINDOW_SECS > PERF_SECS ? WINDOW_SECS - PERF_SECS : 0 ))
  else
    sleep "$WINDOW_SECS"
  fi
  t1="$(date +%s.%N)"
  d1="$(cpu_ticks "$DAEMON_PID")"
  s1="$(cpu_ticks "$sipp_pid")"
  u1="$(udp_counters)"
  x1="$(udp_drops_of "$DAEMON_PID")"
  rss="$(rss_kb "$DAEMON_PID")"
  threads="$(threads_of "$DAEMON_PID")"
  secs="$(echo "$t1 - $t0" | bc -l)"
  read -r _ _ out0 <<< "$u0"
  read -r _ _ out1 <<< "$u1"
  daemon_pct="$(echo "($d1 - $d0) / $CLK_TCK / $secs * 100" | bc -l)"
  sipp_pct="$(echo "($s1 - $s0) / $CLK_TCK / $secs * 100" | bc -l)"
  per_call_pct="$(echo "($daemon_pct - $base_cpu) / $n" | bc -l)"
  rss_mb="$(echo "$rss / 1024" | bc -l)"
  rss_add_mb="$(echo "($rss - $base_rss) / 1024" | bc -l)"
  kb_per_call="$(echo "($rss - $base_rss) / $n" | bc -l)"
  pps="$(echo "($out1 - $out0) / $secs" | bc -l)"
  drops=$((x1 - x0))
  wait "$sipp_pid" || true
  stats_csv="$(ls "$step"/*_.csv 2>/dev/null | head -1)"
  failed="?"
  if [[ -n "$stats_csv" ]]; then
    failed="$(sipp_final_stats "$stats_csv" | awk -F= '$1 == "FailedCall" {print $2}')"
  fi
  wait_active 0 120 || true
  # What the daemon received per call and second (stored with each call's media event).
  rx="$(python3 - "$ADMIN" "$KEY" "$n" <<'EOF'
import json, sys, urllib.request
admin, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def get(path):
    req = urllib.request.Request(f"http://{admin}{path}", headers={"Authorization": f"Bearer {key}"})
    return json.load(urllib.request.urlopen(req))
calls = get("/v1/calls?limit=50")["calls"]
rates = []
for c in calls[:50]:
    d = get(f"/v1/calls/{c['id']}")
    media = [e for e in d.get("events", []) if e["kind"] == "media"]
    if media and d.get("answered_at") and d.get("ended_at"):
        secs = (d["ended_at"] - d["answered_at"]) / 1000
        rates.append(media[0]["detail"].get("packets_received", 0) / max(secs, 0.001))
print(f"{sum(rates) / len(rates):.1f}" if rates else "nan")
EOF
)"
  printf '%6s %6s | %8.1f %10.4f | %9.1f %9.1f %10.1f | %9.0f %8d %8d | %9s %6s   (sipp %.0f%%, %d daemon threads)\n' \
    "$n" "$up" "$daemon_pct" "$per_call_pct" "$rss_mb" "$rss_add_mb" "$kb_per_call" \
    "$pps" $((n * 100)) "$drops" "$rx" "$failed" "$sipp_pct" "$threads"
done
if [[ "$PERF_SECS" -gt 0 && -f "$WORK/perf-${NS[-1]}.data" ]]; then
  echo "perf (daemon, N=${NS[-1]}), self time ≥ 1 %:"
  perf report -i "$WORK/perf-${NS[-1]}.data" --no-children --percent-limit 1 --stdio --sort dso,symbol 2>/dev/null \
    | grep -E '^ +[0-9]' | head -40
fi
if grep -qiE "panicked|ERROR" "$WORK/daemon.log"; then
  echo "daemon log errors (first 5):"
  grep -iE "panicked|ERROR" "$WORK/daemon.log" | head -5
fi
