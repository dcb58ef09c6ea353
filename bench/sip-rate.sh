#!/usr/bin/env bash
# Signalling-rate benchmark: SIPp places short calls with media (INVITE → 100/180/200 → ACK →
# 1 s of caller RTP while the daemon plays its greeting → BYE) at rising rates against a
# release-built daemon running the full call pipeline (bench/flows/bench.toml: a one-word
# opener). For each rate: calls created/succeeded/failed, the INVITE rate SIPp achieved (cps,
# from the capture), INVITE → 180
# and INVITE → 200 p50/p99/max from a loopback capture (kernel timestamps), and the daemon's
# CPU. Ends with the highest rate that had no failed call.
#
# Usage: bench/sip-rate.sh [RATES…]        (default: 10 25 50 75 100 150 200 300 400 600 800 1000)
#   STEP_SECS=10   seconds of calls per rate
#   STOP_AFTER_FAILS=2   stop after this many failing rates in a row
# Needs: sipp (sip-tester), tcpdump, sox, python3, curl; root for tcpdump.
source "$(dirname "$0")/lib.sh"

RATES=("$@")
[[ ${#RATES[@]} -gt 0 ]] || RATES=(10 25 50 75 100 150 200 300 400 600 800 1000)
STEP_SECS="${STEP_SECS:-10}"
STOP_AFTER_FAILS="${STOP_AFTER_FAILS:-2}"

need sipp "apt-get install sip-tester"
need tcpdump "apt-get install tcpdump"
need python3 "apt-get install python3"
need curl "apt-get install curl"
build_agent
WORK="$(mktemp -d /tmp/sip-rate.XXXXXX)"
make_noise 1
cp "$BENCH_DIR/sipp/call_with_media.xml" "$WORK/"
start_daemon
echo "daemon pid $DAEMON_PID, SIP 127.0.0.1:$SIP_PORT; $(nproc) CPUs; $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"
printf '%6s %7s %7s %6s %8s | %8s %8s %8s | %8s %8s %8s | %8s %8s\n' \
  rate created ok failed cps i180_p50 i180_p99 i180_max i200_p50 i200_p99 i200_max daemon% sipp%

best=0
fails_in_row=0
for rate in "${RATES[@]}"; do
  step="$WORK/rate-$rate"
  mkdir -p "$step"
  cp "$WORK/noise.ulaw" "$step/"
  calls=$((rate * STEP_SECS))
  tcpdump -i lo -w "$step/sip.pcap" -B 65536 -U -n "udp port $SIP_PORT" > "$step/tcpdump.log" 2>&1 &
  tcpdump_pid=$!
  PIDS_TO_STOP+=("$tcpdump_pid")
  for _ in $(seq 1 50); do grep -q listening "$step/tcpdump.log" && break; sleep 0.1; done
  d0="$(cpu_ticks "$DAEMON_PID")"
  t0="$(date +%s.%N)"
  (
    cd "$step"
    exec sipp "127.0.0.1:$SIP_PORT" -sf "$WORK/call_with_media.xml" -s agent -i 127.0.0.1 \
      -p "$(free_port)" -mp "$(free_port)" -r "$rate" -m "$calls" -l $((rate * 10 + 10)) \
      -nostdin -timeout $((STEP_SECS + 60))s -trace_stat -fd 1 -trace_err -error_file errors.log \
      -max_socket 65000
  ) > "$step/sipp.log" 2>&1 &
  sipp_pid=$!
  s_ticks=0
  while kill -0 "$sipp_pid" 2>/dev/null; do
    s_ticks="$(cpu_ticks "$sipp_pid" 2>/dev/null || echo "$s_ticks")"
    sleep 0.5
  done
  wait "$sipp_pid" || true
  t1="$(date +%s.%N)"
  d1="$(cpu_ticks "$DAEMON_PID")"
  kill -INT "$tcpdump_pid"
  wait "$tcpdump_pid" 2>/dev/null || true
  stats_csv="$(ls "$step"/*_.csv 2>/dev/null | head -1)"
  declare -A S=()
  if [[ -n "$stats_csv" ]]; then
    while IFS='=' read -r k v; do S[$k]="$v"; done < <(sipp_final_stats "$stats_csv")
  fi
  declare -A L=()
  for kv in $(python3 "$BENCH_DIR/sip_latency.py" "$step/sip.pcap" "$SIP_PORT"); do
    L[${kv%%=*}]="${kv#*=}"
  done
  secs="$(echo "$t1 - $t0" | bc -l)"
  daemon_pct="$(echo "($d1 - $d0) / $CLK_TCK / $secs * 100" | bc -l)"
  sipp_pct="$(echo "$s_ticks / $CLK_TCK / $secs * 100" | bc -l)"
  created="${S[TotalCallCreated]:-0}"
  ok="${S[SuccessfulCall]:-0}"
  failed="${S[FailedCall]:-?}"
  # Calls SIPp never completed count as failures too (e.g. still open at its timeout).
  [[ "$failed" =~ ^[0-9]+$ && "$ok" =~ ^[0-9]+$ ]] && failed=$((calls - ok))
  printf '%6s %7s %7s %6s %8.1f | %8.2f %8.2f %8.2f | %8.2f %8.2f %8.2f | %8.0f %8.0f\n' \
    "$rate" "$created" "$ok" "$failed" "${L[invite_rate]:-0}" \
    "${L[i180_p50]:-nan}" "${L[i180_p99]:-nan}" "${L[i180_max]:-nan}" \
    "${L[i200_p50]:-nan}" "${L[i200_p99]:-nan}" "${L[i200_max]:-nan}" \
    "$daemon_pct" "$sipp_pct"
  unset S L
  if [[ "$failed" == 0 ]]; then
    best="$rate"
    fails_in_row=0
  else
    fails_in_row=$((fails_in_row + 1))
    head -5 "$step/errors.log" 2>/dev/null | sed 's/^/    sipp: /' || true
  fi
  # Let every call of this step end before the next one (the daemon's active-call gauge).
  wait_active 0 120 || true
  [[ "$fails_in_row" -ge "$STOP_AFTER_FAILS" ]] && break
done
echo "highest rate with 0 failed calls: $best calls/s"
if grep -qiE "panicked|ERROR" "$WORK/daemon.log"; then
  echo "daemon log errors (first 5):"
  grep -iE "panicked|ERROR" "$WORK/daemon.log" | head -5
fi
