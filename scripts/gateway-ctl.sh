#!/usr/bin/env bash
# Starts or stops a local gateway process (pid file .gateway.pid, log .gateway.log).
set -euo pipefail
cd "$(dirname "$0")/.."
pid_file=.gateway.pid
log_file=.gateway.log

running() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

case "${1:-}" in
  start)
    port=${2:-9000}
    if running; then
      echo "gateway-ctl: a gateway already runs (pid $(cat "$pid_file")); make gateway-stop first" >&2
      exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "gateway-ctl: port $port is taken by another process" >&2
      exit 1
    fi
    scripts/setup.sh
    nohup .venv/bin/gateway serve --port "$port" >"$log_file" 2>&1 &
    echo $! >"$pid_file"
    for _ in $(seq 1 600); do
      if curl -sf "http://127.0.0.1:$port/health/live" >/dev/null 2>&1; then
        echo "gateway running at http://localhost:$port (pid $(cat "$pid_file"), log $log_file)"
        exit 0
      fi
      if ! running; then
        echo "gateway-ctl: the gateway exited; last lines of $log_file:" >&2
        tail -n 20 "$log_file" >&2
        rm -f "$pid_file"
        exit 1
      fi
      sleep 0.5
    done
    echo "gateway-ctl: the gateway did not become live; see $log_file" >&2
    exit 1
    ;;
  stop)
    if ! running; then
      echo "gateway-ctl: no gateway is running"
      rm -f "$pid_file"
      exit 0
    fi
    kill "$(cat "$pid_file")"
    for _ in $(seq 1 100); do running || break; sleep 0.1; done
    rm -f "$pid_file"
    echo "gateway stopped"
    ;;
  *)
    echo "usage: scripts/gateway-ctl.sh start [PORT] | stop" >&2
    exit 2
    ;;
esac
