#!/usr/bin/env bash
# Start or stop a Docker engine by hand (Debian's docker.io; no systemd here). docs/container.md, "Hosts without a registry".
#   docker/engine.sh start   # prints "started <pid>" or "running" (an engine already answered); exit 1 if none can start
#   docker/engine.sh stop    # stops only the dockerd this script started (its pidfile), waits for it to exit
#   docker/engine.sh status  # exit 0 when an engine answers
# Environment: TGRPO_DOCKER_STATE (pidfile/log directory, default /run/tgrpo-bench-docker),
#   DOCKER_HOST (a unix:// socket; default unix:///var/run/docker.sock, the SDK's default too),
#   TGRPO_DOCKER_APT=0 to never apt-get install docker.io when dockerd is missing,
#   TGRPO_DOCKER_DATA_ROOT (dockerd --data-root; default /var/lib/docker) for an isolated image store.
set -euo pipefail

STATE=${TGRPO_DOCKER_STATE:-/run/tgrpo-bench-docker}
case "${DOCKER_HOST:-}" in
  unix://*) SOCK=${DOCKER_HOST#unix://} ;;
  "") SOCK=/var/run/docker.sock ;;
  *) echo "engine.sh: DOCKER_HOST=$DOCKER_HOST is not a local unix socket; start that engine yourself" >&2; exit 1 ;;
esac
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log
CLIENT=/usr/bin/docker
[ -x "$CLIENT" ] || CLIENT=docker

answers() { "$CLIENT" -H "unix://$SOCK" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
  if answers; then echo "running"; return 0; fi
  if [ "$(id -u)" != 0 ]; then echo "engine.sh: no engine answers on $SOCK and starting one needs root" >&2; return 1; fi
  if ! command -v dockerd >/dev/null 2>&1; then
    if [ "${TGRPO_DOCKER_APT:-1}" = 1 ] && command -v apt-get >/dev/null 2>&1; then
      echo "engine.sh: installing docker.io" >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >&2
    else
      echo "engine.sh: dockerd is not installed" >&2; return 1
    fi
  fi
  mkdir -p "$STATE"
  if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "engine.sh: dockerd $(cat "$PIDFILE") is running but does not answer on $SOCK; see $LOG" >&2; return 1
  fi
  rm -f "$PIDFILE"
  local args=(--host "unix://$SOCK" --pidfile "$PIDFILE")
  if [ -n "${TGRPO_DOCKER_DATA_ROOT:-}" ]; then args+=(--data-root "$TGRPO_DOCKER_DATA_ROOT"); fi
  setsid dockerd "${args[@]}" >"$LOG" 2>&1 </dev/null &
  local pid=$!
  for _ in $(seq 1 120); do
    if answers; then echo "started $pid"; return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "engine.sh: dockerd did not come up; last lines of $LOG:" >&2
  tail -n 20 "$LOG" >&2 || true
  kill "$pid" 2>/dev/null || true
  return 1
}

stop() {
  if [ ! -s "$PIDFILE" ]; then echo "engine.sh: no dockerd started by this script ($PIDFILE)" >&2; return 0; fi
  local pid; pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then echo "engine.sh: dockerd $pid did not stop within 30 s" >&2; return 1; fi
  fi
  rm -f "$PIDFILE"
  echo "stopped $pid"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
