#!/usr/bin/env bash
# Checks deploy/systemd/sensor.service with systemd's own tools, without booting it:
#  - `systemd-analyze verify` must print nothing and exit 0 (it only warns about an unknown or
#    misspelt key, so any output is a failure here);
#  - `systemd-analyze security --offline=true` must rate the overall exposure at 2.0 or less;
#  - TimeoutStopSec must cover serve's --shutdown-timeout default (read from `sensor serve
#    --help`) plus the 10s upload flush, so systemd never SIGKILLs a clean shutdown.
# verify needs the ExecStart binary to exist and be executable: when /usr/local/bin/sensor is
# absent, this script builds the sensor, installs it there for the check and removes it at exit
# (it never touches one that was already there). The ExecReload line needs /bin/kill (procps).
# Needs: root (to install the binary), go, systemd-analyze (Debian: systemd), procps.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
unit="$here/deploy/systemd/sensor.service"
bin=/usr/local/bin/sensor
max_exposure=2.0
fail() { echo "systemd-check: FAIL: $*" >&2; exit 1; }
say() { echo "systemd-check: $*"; }

command -v systemd-analyze >/dev/null || fail "systemd-analyze is not installed (apt-get install -y systemd)"
command -v go >/dev/null || fail "go is not installed"
[ -x /bin/kill ] || fail "/bin/kill (the unit's ExecReload) is missing (apt-get install -y procps)"
[ -f "$unit" ] || fail "$unit is missing"
grep -qxF "ExecStart=$bin serve --config /etc/sensor/sensor.yaml" "$unit" || fail "ExecStart is not $bin serve --config /etc/sensor/sensor.yaml"
say "$(systemd-analyze --version | head -1)"

work=$(mktemp -d)
installed=0
cleanup() {
  if [ "$installed" = 1 ]; then rm -f "$bin"; fi
  rm -rf "$work"
}
trap cleanup EXIT
(cd "$here" && go build -o "$work/sensor" ./cmd/sensor) || fail "go build failed"
if [ ! -e "$bin" ]; then
  install -m 0755 "$work/sensor" "$bin"
  installed=1
  say "installed a freshly built sensor at $bin for verify (removed at exit)"
else
  say "using the $bin already there for verify (left as it is)"
fi

# --- verify ------------------------------------------------------------------------------------
rc=0
out=$(systemd-analyze verify "$unit" 2>&1) || rc=$?
if [ "$rc" != 0 ] || [ -n "$out" ]; then echo "$out" >&2; fail "systemd-analyze verify: exit $rc, output above"; fi
say "verify: exit 0, no warnings"

# --- security ----------------------------------------------------------------------------------
rc=0
sec=$(systemd-analyze security --offline=true "$unit" 2>&1) || rc=$?
[ "$rc" = 0 ] || { echo "$sec" >&2; fail "systemd-analyze security: exit $rc"; }
grep '✗' <<<"$sec" || true # what still counts against the unit, for the log
overall=$(grep -E 'Overall exposure level for sensor\.service: ' <<<"$sec" || true)
[ -n "$overall" ] || { echo "$sec" >&2; fail "no overall exposure level in the output"; }
echo "$overall"
score=$(sed -nE 's/.*Overall exposure level for sensor\.service: ([0-9]+\.[0-9]+) .*/\1/p' <<<"$overall")
[ -n "$score" ] || fail "cannot read the score from: $overall"
awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }' ||
  fail "exposure $score is above $max_exposure"
say "security: exposure $score (at most $max_exposure)"

# --- stop timeout ------------------------------------------------------------------------------
help=$("$work/sensor" serve --help 2>&1 || true)
shutdown=$(grep -A1 -E '^\s+-shutdown-timeout ' <<<"$help" | sed -nE 's/.*\(default ([0-9]+)s\)$/\1/p')
[ -n "$shutdown" ] || fail "cannot read --shutdown-timeout's default (in whole seconds) from sensor serve --help"
grep -q 'uploads then get 10s more' <<<"$help" || fail "sensor serve --help no longer says uploads get 10s: recheck TimeoutStopSec"
stop=$(sed -nE 's/^TimeoutStopSec=([0-9]+)s?$/\1/p' "$unit")
[ -n "$stop" ] || fail "TimeoutStopSec is not set in whole seconds"
[ "$stop" -gt $((shutdown + 10)) ] || fail "TimeoutStopSec=${stop}s does not exceed --shutdown-timeout ${shutdown}s + 10s of upload flush"
say "stop: TimeoutStopSec=${stop}s > ${shutdown}s shutdown + 10s flush"
say "PASS"
