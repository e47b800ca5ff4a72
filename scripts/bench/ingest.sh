#!/usr/bin/env bash
# ingest.sh: check Journal Sensor's ingest claim on this machine.
#
# What it measures (BenchmarkIngest in scripts/bench/ingest_test.go), in one run, side by side:
#   - throughput: Postfix's smtp-source, 20 sessions, 10 KiB messages, into the sensor (parse,
#     fsync'd spool, upload to a local file:// outbox), into smtp-sink (keeps nothing: the
#     ceiling) and into a private Postfix with its durable queue; messages per second and the
#     ratios sensor/smtp-sink (goal >= 0.6) and sensor/Postfix (goal >= 5);
#   - CPU per message of the sensor process and of the smtp-sink process (from /proc);
#   - latency from the end of DATA to the 250 at moderate load (10 sessions, a 10 KiB message
#     every 4 ms each) and at 100 sessions, sensor and smtp-sink, p50 and p99
#     (goal: sensor p99 <= 5 ms at 10 sessions);
#   - the sensor's throughput at 10 and at 100 sessions: does it rise with sessions?
# Everything runs on this machine, in $TMPDIR (default /tmp): the disk under it is the disk
# measured. The load generators share the cores with the servers.
#
# How to run it, from anywhere in the checkout:
#   sudo scripts/bench/ingest.sh
#   INGEST_RUNS=5 INGEST_MESSAGES=5000 sudo -E scripts/bench/ingest.sh
# INGEST_RUNS (default 3) is how many interleaved runs; INGEST_MESSAGES (default 2000) is the
# messages per smtp-source run; INGEST_TIMEOUT (default 60m) bounds the whole benchmark.
# It takes about half a minute a run at the defaults, plus building the sensor.
#
# What it needs: Linux (/proc), root (the private Postfix's daemons drop to the postfix
# user), Go (the version go.mod asks for), and Postfix's tools smtp-source, smtp-sink and
# postfix (Debian/Ubuntu: apt-get install postfix). It does not touch the system's Postfix:
# its instance has its own configuration, queue and log in a temporary directory; the
# system's Postfix need not run.
#
# Exit status: 0 when the benchmark ran (whether or not the goals are met, which the summary
# says), non-zero when it could not run.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "${script_dir}/../.." && pwd)
if [[ ! -f "${root}/go.mod" ]]; then
	echo "ingest.sh: no go.mod at ${root}: run the script from its place in the checkout" >&2
	exit 2
fi

# Postfix's tools live in /usr/sbin, which is not on every user's PATH.
PATH="${PATH}:/usr/sbin:/sbin"
export PATH

missing=0
need() { # need TOOL PACKAGE
	if ! command -v "$1" >/dev/null 2>&1; then
		echo "ingest.sh: $1 not found: install it with: apt-get install -y $2" >&2
		missing=1
	fi
}
need go "golang-go (or Go from https://go.dev/dl/, the version go.mod asks for)"
need smtp-source postfix
need smtp-sink postfix
need postfix postfix
if [[ "${missing}" -ne 0 ]]; then
	exit 2
fi
if [[ "$(id -u)" -ne 0 ]]; then
	echo "ingest.sh: run it as root (sudo -E): the private Postfix's daemons drop to the postfix user" >&2
	exit 2
fi

runs=${INGEST_RUNS:-3}
messages=${INGEST_MESSAGES:-2000}
tmp=${TMPDIR:-/tmp}

cpu_model=$(awk -F': *' '/^(model name|Model|cpu model|Processor)[[:space:]]*:/ { print $2; exit }' /proc/cpuinfo)
echo "== Machine"
echo "CPU:     ${cpu_model:-unknown}"
echo "Cores:   $(nproc) online"
echo "Memory:  $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "Kernel:  $(uname -sr)"
echo "Go:      $(cd "${root}" && go version)"
echo "Postfix: $(postconf -h mail_version 2>/dev/null || echo unknown)"
echo "Disk of ${tmp} (the spool, the outbox and Postfix's queue):"
df -hT "${tmp}" | sed 's/^/  /'
echo
echo "== Benchmark: ${runs} run(s) of ${messages} messages per smtp-source run"

out=$(mktemp)
trap 'rm -f "${out}"' EXIT
status=0
(cd "${root}" && INGEST_MESSAGES="${messages}" go test -run '^$' -bench '^BenchmarkIngest$' \
	-benchtime "${runs}x" -timeout "${INGEST_TIMEOUT:-60m}" ./scripts/bench/) 2>&1 | tee "${out}" || status=$?
if [[ "${status}" -ne 0 ]]; then
	echo "ingest.sh: the benchmark failed (exit ${status}); its output is above" >&2
	exit "${status}"
fi

# The result line: name, iterations, then value-unit pairs.
declare -A m
while read -r unit value; do
	m["${unit}"]=${value}
done < <(awk '$1 ~ /^BenchmarkIngest(-[0-9]+)?$/ { for (i = 3; i < NF; i += 2) print $(i + 1), $i }' "${out}")
if [[ -z "${m[sensor-msgs/s]:-}" ]]; then
	echo "ingest.sh: no BenchmarkIngest result line in the output above" >&2
	exit 1
fi

met=0
goals=0
# row LABEL UNIT [OP GOAL]: one line of the summary; with OP (>= or <=) and GOAL, says
# whether the goal is met.
row() {
	local label=$1 unit=$2 op=${3:-} goal=${4:-} value verdict=""
	value=${m[${unit}]:-}
	if [[ -z "${value}" ]]; then
		printf '%-44s %12s\n' "${label}" "missing"
		return
	fi
	if [[ -n "${op}" ]]; then
		goals=$((goals + 1))
		if awk -v v="${value}" -v g="${goal}" -v op="${op}" 'BEGIN { exit !((op == ">=") ? v >= g : v <= g) }'; then
			verdict="met"
			met=$((met + 1))
		else
			verdict="NOT met"
		fi
		printf '%-44s %12s   goal %s %-6s %s\n' "${label}" "${value}" "${op}" "${goal}" "${verdict}"
	else
		printf '%-44s %12s\n' "${label}" "${value}"
	fi
}

echo
echo "== Summary (measure, value, goal, met?)"
echo "Throughput, 20 sessions, 10 KiB messages"
row "  sensor (msgs/s)" sensor-msgs/s
row "  smtp-sink, keeps nothing (msgs/s)" sink-msgs/s
row "  Postfix, durable queue (msgs/s)" postfix-msgs/s
row "  sensor / smtp-sink" sensor/sink ">=" 0.6
row "  sensor / Postfix" sensor/postfix ">=" 5
echo "CPU per message (us of user+system CPU)"
row "  sensor, during its run" sensor-cpu-us/msg
row "  sensor, with the upload that follows" sensor-cpu-all-us/msg
row "  smtp-sink" sink-cpu-us/msg
echo "Latency, end of DATA to 250, 10 sessions, 4 ms pause (ms)"
row "  sensor p50" s10-sensor-p50-ms
row "  sensor p99" s10-sensor-p99-ms "<=" 5
row "  smtp-sink p50" s10-sink-p50-ms
row "  smtp-sink p99" s10-sink-p99-ms
row "  sensor achieved (msgs/s)" s10-sensor-msgs/s
row "  smtp-sink achieved (msgs/s)" s10-sink-msgs/s
echo "Latency, end of DATA to 250, 100 sessions, 4 ms pause (ms)"
row "  sensor p50" s100-sensor-p50-ms
row "  sensor p99" s100-sensor-p99-ms
row "  smtp-sink p50" s100-sink-p50-ms
row "  smtp-sink p99" s100-sink-p99-ms
row "  sensor achieved (msgs/s)" s100-sensor-msgs/s
row "  smtp-sink achieved (msgs/s)" s100-sink-msgs/s
echo "Sensor throughput by sessions (smtp-source, no pause)"
row "  10 sessions (msgs/s)" sensor-10sess-msgs/s
row "  100 sessions (msgs/s)" sensor-100sess-msgs/s
row "  100 / 10 sessions" sensor-100sess/10sess
if awk -v r="${m[sensor-100sess/10sess]:-0}" 'BEGIN { exit !(r > 1.05) }'; then
	echo "  -> throughput rises with sessions"
else
	echo "  -> throughput does not rise with sessions (within 5%)"
fi
echo
echo "${met} of ${goals} goals met."
