#!/usr/bin/env bash
# The alert rules and the metrics, checked with Prometheus's own promtool: the rules'
# syntax, their unit tests, and the exposition of a running sensor (names, units, help).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v promtool >/dev/null || { echo "promtool not found: apt-get install -y prometheus" >&2; exit 1; }

promtool check rules deploy/prometheus/alerts.yaml
(cd deploy/prometheus && promtool test rules alerts_test.yaml)

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/sensor" ./cmd/sensor
"$work/sensor" serve --data-dir "$work/data" --smtp-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --log-format json >"$work/log" 2>&1 &
pid=$!
admin=""
for _ in $(seq 100); do
  admin=$(grep -o '"admin":"[^"]*"' "$work/log" | head -1 | cut -d'"' -f4 || true)
  [ -n "$admin" ] && break
  sleep 0.1
done
[ -n "$admin" ] || { echo "the sensor did not start:" >&2; cat "$work/log" >&2; exit 1; }
curl -fsS "http://$admin/metrics" >"$work/metrics"
# promtool prints its findings and exits non-zero on a problem.
promtool check metrics <"$work/metrics"
echo "prometheus-check: rules, rule tests and $(grep -c '^sensor_' "$work/metrics") sensor series: OK"
