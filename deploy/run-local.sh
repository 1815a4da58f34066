#!/usr/bin/env bash
# `make run`: the service on the built-in model (port 8000), the standalone exporter (9835) and,
# where the binaries exist, a local Prometheus (9090, exemplar storage on) and Alertmanager
# (9093). Prometheus reads deploy/generated/prometheus.local.yml (`inferwatch generate` renders
# it from deploy/prometheus_config.py). Data and logs go to .run/ (gitignored). Ctrl-C, or any
# one of them exiting, stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=.run
mkdir -p "$RUN_DIR/prometheus" "$RUN_DIR/alertmanager"
pids=()

stop_all() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

if command -v prometheus-alertmanager >/dev/null 2>&1; then
    am_config=alerts/generated/alertmanager.yml
    [ -f "$am_config" ] || am_config=deploy/alertmanager.local.yml
    prometheus-alertmanager \
        --config.file="$am_config" \
        --storage.path="$RUN_DIR/alertmanager" \
        --web.listen-address=127.0.0.1:9093 \
        --cluster.listen-address= \
        >"$RUN_DIR/alertmanager.log" 2>&1 &
    pids+=($!)
    echo "alertmanager: http://127.0.0.1:9093 (config $am_config, log $RUN_DIR/alertmanager.log)"
else
    echo "prometheus-alertmanager not found: skipped (make system-deps installs it)"
fi

if command -v prometheus >/dev/null 2>&1; then
    prometheus \
        --config.file=deploy/generated/prometheus.local.yml \
        --storage.tsdb.path="$RUN_DIR/prometheus" \
        --web.listen-address=127.0.0.1:9090 \
        --enable-feature=exemplar-storage \
        >"$RUN_DIR/prometheus.log" 2>&1 &
    pids+=($!)
    echo "prometheus:   http://127.0.0.1:9090 (log $RUN_DIR/prometheus.log)"
else
    echo "prometheus not found: skipped (make system-deps installs it)"
fi

.venv/bin/inferwatch exporter --host 127.0.0.1 --port 9835 >"$RUN_DIR/exporter.log" 2>&1 &
pids+=($!)
echo "exporter:     http://127.0.0.1:9835/metrics (log $RUN_DIR/exporter.log)"

echo "service:      http://127.0.0.1:8000 (OpenAI API under /v1, /metrics, /ready); Ctrl-C stops all"
.venv/bin/inferwatch serve --port 8000 &
pids+=($!)

# Whichever exits first (or Ctrl-C) ends the run; the trap stops the others.
status=0
wait -n "${pids[@]}" || status=$?
exit "$status"
