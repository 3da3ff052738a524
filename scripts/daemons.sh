# shellcheck shell=bash
# Start and stop the servers a script launches itself, always by the pid it recorded (never by name), so
# that nothing the script did not start is touched. Sourced by .ci/run and scripts/quickstart.

# A handle on a process just started in the background: "PID:STARTTIME" (the kernel's start time in
# /proc/PID/stat), so that a pid recycled for some other process is never mistaken for it.
daemon_handle() {
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  read -ra stat <<<"${stat##*) }"
  echo "$1:${stat[19]}"
}

# True while the process of HANDLE runs (an exited child not yet reaped does not count).
daemon_alive() {
  local pid=${1%%:*} start=${1#*:} stat
  [ -n "$1" ] && read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
  read -ra stat <<<"${stat##*) }"
  [ "${stat[0]}" != Z ] && [ "${stat[19]}" = "$start" ]
}

# stop_daemon HANDLE NAME [TIMEOUT_S]: SIGTERM, wait up to TIMEOUT_S (default 10) for it to exit, then SIGKILL.
stop_daemon() {
  local handle=$1 name=$2 timeout=${3:-10} pid=${1%%:*} i
  [ -n "$handle" ] || return 0
  if daemon_alive "$handle"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      daemon_alive "$handle" || break
      sleep 0.1
    done
    if daemon_alive "$handle"; then
      echo "$name (pid $pid) did not exit ${timeout}s after SIGTERM; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        daemon_alive "$handle" || break
        sleep 0.1
      done
    fi
  fi
  wait "$pid" 2>/dev/null || true # reap it if it is our child
}

# start_dockerd LOGFILE: start a Docker engine (in its own session, so a Ctrl-C meant for the caller does not
# reach it) and wait until `docker info` answers. Tries overlay2, then vfs; a failed attempt is stopped by
# its pid before the next. DOCKERD holds the daemon_handle of the dockerd being started from the moment it
# is spawned (so an EXIT trap that stops "$DOCKERD" also covers an interrupted start); on success it stays
# set, with DOCKERD_PID and DOCKERD_DRIVER; returns 1, with DOCKERD empty, if neither driver starts.
# REGISTRAR_DOCKERD_ARGS adds arguments (word-split), e.g. `-H unix:///run/d.sock --data-root /srv/docker`.
# Beware: a dockerd given --bridge=none deletes the host's docker0 at start-up, breaking any other engine in
# the same network namespace; a second engine beside a running one belongs in a network namespace of its own.
start_dockerd() {
  local log=$1 driver i
  local -a extra
  read -ra extra <<<"${REGISTRAR_DOCKERD_ARGS:-}"
  DOCKERD='' DOCKERD_PID='' DOCKERD_DRIVER=''
  for driver in overlay2 vfs; do
    setsid dockerd --storage-driver="$driver" "${extra[@]}" >>"$log" 2>&1 </dev/null &
    DOCKERD=$(daemon_handle $!) || DOCKERD=$!:gone
    for ((i = 0; i < 60; i++)); do
      if docker info >/dev/null 2>&1; then
        # shellcheck disable=SC2034 # results for the caller
        DOCKERD_PID=${DOCKERD%%:*} DOCKERD_DRIVER=$driver
        return 0
      fi
      daemon_alive "$DOCKERD" || break
      sleep 0.5
    done
    echo "dockerd with --storage-driver=$driver did not start (log: $log)" >&2
    stop_daemon "$DOCKERD" dockerd 30
    DOCKERD=''
  done
  tail -n 20 "$log" >&2
  return 1
}

# wait_for WHAT SECONDS COMMAND...: poll COMMAND every 0.2 s until it succeeds; 1 after SECONDS.
wait_for() {
  local what=$1 seconds=$2 i
  shift 2
  for ((i = 0; i < seconds * 5; i++)); do
    "$@" && return 0
    sleep 0.2
  done
  echo "timed out after ${seconds}s waiting for $what" >&2
  return 1
}
