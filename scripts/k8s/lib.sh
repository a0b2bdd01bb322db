# Small helpers shared by the test cluster's scripts: messages, waiting for
# a condition, and daemons started detached with a PID file and a log.

k8s_say() { printf '• %s\n' "$*" >&2; }
k8s_die() { printf 'k8s-lab: %s\n' "$*" >&2; exit 1; }

# k8s_wait SECONDS WHAT CMD...: polls CMD until it succeeds; fails naming WHAT.
k8s_wait() {
  local limit="$1" what="$2"; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && { printf 'k8s-lab: timed out after %s s waiting for %s\n' "$limit" "$what" >&2; return 1; }
    sleep 0.5
  done
}

k8s_pidfile() { printf '%s/pids/%s.pid' "$K8S_RUN" "$1"; }

# k8s_pid NAME: the daemon's PID if its PID file names a live process that is
# still the program it started (a recycled PID is not taken for it).
k8s_pid() {
  local f pid exe
  f="$(k8s_pidfile "$1")"
  [ -f "$f" ] || return 1
  read -r pid exe < "$f" || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ] || return 1
  printf '%s\n' "$pid"
}

# k8s_start NAME BINARY ARGS...: starts BINARY in its own session (it
# outlives this shell), output appended to $K8S_LOGS/NAME.log. The PID file
# holds the PID and the binary's resolved path.
k8s_start() {
  local name="$1" bin="$2"; shift 2
  local exe pid
  exe="$(readlink -f "$bin")"
  mkdir -p "$K8S_RUN/pids" "$K8S_LOGS"
  printf '\n=== %s start %s\n' "$(date -u +%FT%TZ)" "$name" >> "$K8S_LOGS/$name.log"
  # Not a process-group leader here, so setsid makes the new session in
  # place (no fork) and $! is the daemon itself.
  # Fd 8 is k8s-lab.sh's lock: a daemon must not hold it for its lifetime.
  setsid nohup "$exe" "$@" >> "$K8S_LOGS/$name.log" 2>&1 < /dev/null 8>&- &
  pid=$!
  printf '%s %s\n' "$pid" "$exe" > "$(k8s_pidfile "$name")"
  sleep 0.2
  k8s_pid "$name" >/dev/null || k8s_die "$name exited at once; its log: $K8S_LOGS/$name.log"$'\n'"$(tail -n 15 "$K8S_LOGS/$name.log")"
}

# k8s_stop NAME: SIGTERM, then SIGKILL after 15 s; removes the PID file.
k8s_stop() {
  local name="$1" pid i
  if pid="$(k8s_pid "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      [ -d "/proc/$pid" ] || break
      sleep 0.1
    done
    if [ -d "/proc/$pid" ]; then
      k8s_say "$name did not stop on SIGTERM within 15 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$(k8s_pidfile "$name")"
}
