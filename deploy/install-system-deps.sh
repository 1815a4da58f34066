#!/usr/bin/env bash
# Installs the real Prometheus, promtool, Alertmanager and amtool the tests run against
# (Debian packages `prometheus` and `prometheus-alertmanager`), and docker-compose (Debian's
# v1, package `docker-compose`) with which tests/deploy validates docker-compose.yml; no Docker
# engine is needed for that.
set -euo pipefail
need=()
for bin in prometheus promtool prometheus-alertmanager amtool docker-compose; do
    command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing prometheus, prometheus-alertmanager and docker-compose (missing: ${need[*]})"
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "error: ${need[*]} missing and neither root nor sudo is available;" \
         "install the Debian packages prometheus, prometheus-alertmanager and docker-compose" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq prometheus prometheus-alertmanager docker-compose >/dev/null
