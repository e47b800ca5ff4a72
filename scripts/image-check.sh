#!/usr/bin/env bash
# The container image's promises, proved without a Docker engine (CI has none):
#  (a) the binary is built by the Dockerfile's own build line, read from the Dockerfile (with
#      its GOTOOLCHAIN and ARG VERSION), so the two cannot drift apart;
#  (b) it is static, as distroless/static needs: `file` says "statically linked" and `ldd`
#      says "not a dynamic executable"; it is stripped and carries no build path (-trimpath);
#  (c) it runs as the image's USER (uid/gid 65532, no supplementary groups, via setpriv) with
#      only the image's environment (`env -i` plus the Dockerfile's SENSOR_* ENV line, no PATH,
#      no HOME), from an empty working directory it cannot write, with a data directory owned by
#      65532 standing in for the /var/lib/sensor volume;
#  (d) it takes a message over SMTP, the record lands in <data-dir>/outbox (the default
#      pipeline), `sensor healthcheck` with no flags (the image's HEALTHCHECK, run the same way)
#      exits 0, and SIGTERM stops it with exit 0.
# Ports: the image's :2525 and :9025 may be taken on a shared machine, so two free ports are
# picked and only SENSOR_SMTP_LISTEN and SENSOR_ADMIN_LISTEN are overridden, kept in the
# image's wildcard form (":PORT"), so the healthcheck still has to turn ":PORT" into a loopback
# address as it does in the container. SENSOR_DATA_DIR points at the temporary stand-in.
# Needs: root (for setpriv), go, file, ldd, setpriv, swaks. A missing tool is a failure.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
dockerfile="$here/Dockerfile"
fail() { echo "image-check: FAIL: $*" >&2; keep=1; exit 1; }
say() { echo "image-check: $*"; }

for tool in go file ldd setpriv swaks; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install -y file util-linux swaks)"
done
[ "$(id -u)" = 0 ] || fail "needs root to start the sensor as uid 65532"

# --- the Dockerfile, read once --------------------------------------------------------------
build_lines=$(grep -E '^RUN CGO_ENABLED=0 go build ' "$dockerfile" || true)
[ "$(printf '%s\n' "$build_lines" | grep -c .)" = 1 ] ||
  fail "want exactly one 'RUN CGO_ENABLED=0 go build ...' line in the Dockerfile, got: $build_lines"
build_cmd=${build_lines#RUN }
# The flags the image depends on, asserted so that an edit that drops one fails here.
# shellcheck disable=SC2016 # ${VERSION} is the Dockerfile's text, not this shell's
for want in 'CGO_ENABLED=0 ' ' -trimpath ' '-ldflags "-s -w -X main.version=${VERSION}"' ' -o /sensor ./cmd/sensor'; do
  [[ "$build_cmd" == *"$want"* ]] || fail "the Dockerfile's build line lacks '$want': $build_cmd"
done
toolchain=$(sed -n 's/^ENV GOTOOLCHAIN=\([^ ]*\)$/\1/p' "$dockerfile")
[ -n "$toolchain" ] || fail "no 'ENV GOTOOLCHAIN=...' in the Dockerfile's build stage"
gomod_toolchain=$(sed -n 's/^toolchain //p' "$here/go.mod")
[ "$toolchain" = "$gomod_toolchain" ] || fail "Dockerfile GOTOOLCHAIN=$toolchain, go.mod toolchain $gomod_toolchain"
default_version=$(sed -n 's/^ARG VERSION=\(.*\)$/\1/p' "$dockerfile" | head -1)
[ -n "$default_version" ] || fail "no 'ARG VERSION=...' in the Dockerfile"
grep -qxE 'USER 65532:65532' "$dockerfile" || fail "the Dockerfile's USER is not the numeric 65532:65532"
grep -qxF 'HEALTHCHECK CMD ["/sensor", "healthcheck"]' "$dockerfile" || fail "the Dockerfile's HEALTHCHECK is not /sensor healthcheck"
env_line=$(grep -E '^ENV SENSOR_' "$dockerfile" || true)
[ "$(printf '%s\n' "$env_line" | grep -c .)" = 1 ] || fail "want exactly one 'ENV SENSOR_...' line in the Dockerfile"
declare -A image_env=()
for kv in ${env_line#ENV }; do image_env[${kv%%=*}]=${kv#*=}; done
for k in SENSOR_SMTP_LISTEN SENSOR_ADMIN_LISTEN SENSOR_DATA_DIR; do
  [ -n "${image_env[$k]:-}" ] || fail "the Dockerfile's ENV line does not set $k"
done
[ "${#image_env[@]}" = 3 ] || fail "the Dockerfile's ENV line sets ${#image_env[@]} variables; this check runs with three"
say "Dockerfile: build line: $build_cmd"
say "Dockerfile: GOTOOLCHAIN=$toolchain, VERSION default $default_version, env: $env_line"

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  if [ "${keep:-0}" = 1 ]; then echo "image-check: left $work for inspection" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
# mktemp -d is 0700: uid 65532 must be able to reach the binary and the data directory in it.
chmod 0755 "$work"

# --- (a) the build, as the Dockerfile does it ------------------------------------------------
version="image-check-$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)"
run_cmd=${build_cmd/ -o \/sensor / -o \"\$out\" }
say "(a) building: $run_cmd  (VERSION=$version, GOTOOLCHAIN=$toolchain)"
t0=$(date +%s)
(cd "$here" && export out="$work/sensor" VERSION="$version" GOTOOLCHAIN="$toolchain" && eval "$run_cmd") ||
  fail "the Dockerfile's build line failed"
say "(a) built in $(($(date +%s) - t0))s"
built_go=$(go version "$work/sensor" | awk '{print $2}')
[ "$built_go" = "$toolchain" ] || fail "the binary was built with $built_go, not $toolchain"
got_version=$("$work/sensor" version)
[ "$got_version" = "sensor $version" ] || fail "sensor version says '$got_version', want 'sensor $version' (-X main.version)"
say "(a) $got_version, built with $built_go"

# --- (b) static --------------------------------------------------------------------------------
file_out=$(file "$work/sensor")
ldd_out=$(ldd "$work/sensor" 2>&1 || true)
echo "file: $file_out"
echo "ldd:  $ldd_out"
[[ "$file_out" == *"statically linked"* ]] || fail "file does not say statically linked"
[[ "$ldd_out" == *"not a dynamic executable"* ]] || fail "ldd does not say not a dynamic executable"
[[ "$file_out" == *", stripped"* ]] || fail "file does not say stripped (-s -w)"
if grep -qaF "$here" "$work/sensor"; then fail "the binary contains the build path $here (-trimpath)"; fi
say "(b) static, stripped, no build path"

# --- (c) as uid 65532 with only the image's environment --------------------------------------
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    # Nothing answers: free (close enough; the sensor fails loudly on a taken port anyway).
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  fail "no free port found"
}
smtp_port=$(free_port)
admin_port=$(free_port)
[ "$smtp_port" != "$admin_port" ] || admin_port=$(free_port)
data="$work/var-lib-sensor" # stands in for the image's /var/lib/sensor volume
cwd="$work/empty"           # the working directory: empty, and not writable by 65532
mkdir "$data" "$cwd"
chown 65532:65532 "$data"
chmod 0700 "$data"
chmod 0555 "$cwd"
envs=(
  "SENSOR_SMTP_LISTEN=:$smtp_port"
  "SENSOR_ADMIN_LISTEN=:$admin_port"
  "SENSOR_DATA_DIR=$data"
)
setpriv=$(command -v setpriv)
# as_image command... runs it as the image runs things: uid/gid 65532, no supplementary groups,
# only envs, in cwd. It execs all the way down (env, setpriv, the command), so it must be called
# in a subshell: "( as_image ... )", or "as_image ... &", whose $! is then the sensor itself.
as_image() {
  cd "$cwd" && exec env -i "${envs[@]}" "$setpriv" --reuid=65532 --regid=65532 --clear-groups "$@"
}
say "(c) starting as 65532:65532 in $cwd with only: ${envs[*]}"
say "    (image: ${image_env[SENSOR_SMTP_LISTEN]} ${image_env[SENSOR_ADMIN_LISTEN]} ${image_env[SENSOR_DATA_DIR]}; ports moved to free ones, data dir to a stand-in)"
as_image "$work/sensor" serve 2>"$work/sensor.log" &
pid=$!
ready=0
for _ in $(seq 1 100); do
  kill -0 "$pid" 2>/dev/null || { cat "$work/sensor.log" >&2; fail "the sensor exited at start"; }
  if grep -q 'sensor ready' "$work/sensor.log"; then ready=1; break; fi
  sleep 0.1
done
[ "$ready" = 1 ] || { cat "$work/sensor.log" >&2; fail "no 'sensor ready' in 10s"; }
status=$(cat "/proc/$pid/status")
grep -qE '^Uid:\s+65532\s+65532\s+65532\s+65532$' <<<"$status" || fail "not running as uid 65532: $(grep ^Uid <<<"$status")"
grep -qE '^Gid:\s+65532\s+65532\s+65532\s+65532$' <<<"$status" || fail "not running as gid 65532: $(grep ^Gid <<<"$status")"
grep -qE '^Groups:\s*$' <<<"$status" || fail "supplementary groups left: $(grep ^Groups <<<"$status")"
grep -qE '^CapEff:\s+0+$' <<<"$status" || fail "effective capabilities left: $(grep ^CapEff <<<"$status")"
proc_env=$(tr '\0' '\n' <"/proc/$pid/environ" | sort)
[ "$proc_env" = "$(printf '%s\n' "${envs[@]}" | sort)" ] || fail "the sensor's environment is not exactly the image's: $proc_env"
[ "$(readlink "/proc/$pid/cwd")" = "$cwd" ] || fail "working directory is $(readlink "/proc/$pid/cwd")"
say "(c) pid $pid: uid/gid 65532, no groups, no capabilities, environment exactly: $(echo "$proc_env" | tr '\n' ' ')"

# --- (d) mail in, record out, healthcheck, SIGTERM ---------------------------------------------
hc_out=$( (as_image "$work/sensor" healthcheck) 2>&1) || fail "sensor healthcheck (no flags, image env) exited $?: $hc_out"
say "(d) healthcheck before mail: exit 0 ($hc_out)"
subject="image-check $RANDOM$RANDOM"
swaks_out=$(swaks --server "127.0.0.1:$smtp_port" --from alice@example.org --to journal@example.net \
  --header "Subject: $subject" --body "a body sentence that must not be kept" 2>&1) ||
  { echo "$swaks_out" >&2; fail "swaks failed"; }
grep -qE '^<- +250 2\.0\.0 OK queued as ' <<<"$swaks_out" || { echo "$swaks_out" >&2; fail "no 250 queued for DATA"; }
queued=$(grep -oE '250 2\.0\.0 OK queued as [^ ]+' <<<"$swaks_out" | head -1)
found=
for _ in $(seq 1 100); do
  found=$(grep -lF "\"subject\":\"$subject\"" "$data"/outbox/*.ndjson 2>/dev/null || true)
  [ -n "$found" ] && break
  sleep 0.1
done
[ -n "$found" ] || { ls -lR "$data" >&2; fail "no record with subject '$subject' in $data/outbox within 10s"; }
if grep -rqF "a body sentence that must not be kept" "$data"; then fail "the body sentence is in the data dir"; fi
not_ours=$(find "$data" ! -user 65532 -print)
[ -z "$not_ours" ] || fail "files in the data dir not owned by 65532: $not_ours"
[ -z "$(ls -A "$cwd")" ] || fail "the sensor wrote into its working directory"
say "(d) $queued; record in ${found#"$work"/}; every file in the data dir owned by 65532"
hc_out=$( (as_image "$work/sensor" healthcheck) 2>&1) || fail "sensor healthcheck after mail exited $?: $hc_out"
say "(d) healthcheck after mail: exit 0"

t0=$(date +%s%3N)
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
took=$(($(date +%s%3N) - t0))
[ "$rc" = 0 ] || { cat "$work/sensor.log" >&2; fail "exit $rc after SIGTERM"; }
grep -q 'sensor stopped' "$work/sensor.log" || { cat "$work/sensor.log" >&2; fail "no 'sensor stopped' in the log"; }
if grep -qE '"level":"ERROR"|level=ERROR' "$work/sensor.log"; then cat "$work/sensor.log" >&2; fail "errors in the log"; fi
say "(d) SIGTERM: exit 0 in ${took}ms, 'sensor stopped' logged"
say "PASS"
