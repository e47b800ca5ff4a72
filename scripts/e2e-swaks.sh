#!/usr/bin/env bash
# End-to-end proof with real parts: swaks (a real SMTP client) → `sensor serve` (the built
# binary) → `sensor receiver` over HTTPS with a CA made here by openssl and a bearer token.
#
# It checks what the sensor promises a newcomer: the record arrives within a second of the 250, the
# attachment's sha256 equals that of the file attached, a body sentence appears in no record,
# spool file or log, and journal reports yield the original's Subject and Message-ID and every
# recipient with its type. Then a second sensor set up for trusted sources only refuses, with
# the promised codes, every copy that is not the customer's. Needs: go, swaks with
# Net::SSLeay (for --tls), openssl, jq. A missing tool is a failure.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
for tool in go swaks openssl jq; do
  command -v "$tool" >/dev/null || { echo "e2e-swaks: $tool is not installed (apt-get install -y swaks openssl jq)" >&2; exit 1; }
done
perl -MNet::SSLeay -e 1 2>/dev/null || { echo "e2e-swaks: swaks needs Net::SSLeay for STARTTLS (apt-get install -y libnet-ssleay-perl)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${keep:-0}" = 1 ]; then echo "e2e-swaks: left $work for inspection" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "e2e-swaks: FAIL: $*" >&2; keep=1; exit 1; }
now_ms() { date +%s%3N; }

echo "e2e-swaks: building"
(cd "$here" && go build -o "$work/sensor" ./cmd/sensor)

# A CA and a server certificate for 127.0.0.1, made the way an operator would.
cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj "/CN=e2e CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.cnf
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 -extfile san.cnf 2>/dev/null
head -c 24 /dev/urandom | base64 > token

# Both servers listen on port 0; their logs say where they ended up.
./sensor receiver --listen 127.0.0.1:0 --out out --token-file token --tls-cert srv.pem --tls-key srv.key 2> receiver.log &
pids+=($!)
wait_log() { # file pattern
  for _ in $(seq 1 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  cat "$1" >&2; fail "no '$2' in $1"
}
wait_log receiver.log "receiver ready"
rcv=$(grep -o 'listen=[0-9.:]*' receiver.log | head -1 | cut -d= -f2)

./sensor serve --data-dir data --smtp-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --pipeline-url "https://$rcv" --pipeline-token-file token --pipeline-ca-file ca.pem 2> sensor.log &
pids+=($!)
wait_log sensor.log "sensor ready"
smtp=$(grep -o ' smtp=[0-9.:]*' sensor.log | head -1 | cut -d= -f2)
admin=$(grep -o ' admin=[0-9.:]*' sensor.log | head -1 | cut -d= -f2)
./sensor healthcheck --admin "$admin" >/dev/null || fail "healthcheck says the sensor is not ready"
echo "e2e-swaks: sensor on $smtp, receiver on https://$rcv"

record() { grep "\"id\":\"$1\"" out/records.ndjson; }
# await ID: wait for the record to reach the receiver; prints the milliseconds it took.
await() {
  local start; start=$(now_ms)
  for _ in $(seq 1 1000); do
    # jq accepts only a whole line: the receiver may be mid-append.
    if [ -f out/records.ndjson ] && record "$1" | jq -e .id >/dev/null 2>&1; then
      echo $(( $(now_ms) - start )); return 0
    fi
    sleep 0.01
  done
  fail "record $1 never reached the receiver"
}
queued_id() { { grep -o 'queued as [0-9A-Z]*' || true; } | awk '{print $3}'; }

# 1. A plain message with an attachment and a sentence in the body.
sentence="The orchard gate code changes every second Tuesday of the month"
head -c 50000 /dev/urandom > payload.bin
want_sha=$(sha256sum payload.bin | cut -d' ' -f1)
id=$(swaks --server "$smtp" --from alice@sender.example --to journal@sensor.test \
  --header "Subject: e2e swaks" --body "$sentence https://phish.example/login" \
  --attach-type application/octet-stream --attach-name payload.bin --attach @payload.bin 2>&1 | queued_id)
[ -n "$id" ] || fail "swaks got no 250 with a record id"
took=$(await "$id")
echo "e2e-swaks: record $id reached the receiver ${took}ms after swaks got its 250"
[ "$took" -le 1000 ] || fail "took ${took}ms, promised within a second"
rec=$(record "$id")
got_sha=$(jq -r '.attachments[] | select(.filename=="payload.bin") | .sha256' <<<"$rec")
[ "$got_sha" = "$want_sha" ] || fail "attachment sha256 $got_sha, file has $want_sha"
[ "$(jq -r '.message.subject' <<<"$rec")" = "e2e swaks" ] || fail "subject: $(jq -c .message <<<"$rec")"
[ "$(jq -r '.urls[0].url' <<<"$rec")" = "https://phish.example/login" ] || fail "urls: $(jq -c .urls <<<"$rec")"
[ "$(jq -r '.envelope.mail_from' <<<"$rec")" = "alice@sender.example" ] || fail "envelope: $(jq -c .envelope <<<"$rec")"

# 2. Journal reports: a synthetic one with every summary line kind, and the corpus ones.
cat > journal.eml <<'EOF'
From: Microsoft Outlook <MicrosoftExchange@tenant.example>
To: journal@sensor.test
Subject: Board pack
X-MS-Journal-Report:
Content-Type: multipart/mixed; boundary="jr"

--jr
Content-Type: text/plain; charset="us-ascii"

Sender: ceo@tenant.example
Subject: Board pack
Message-Id: <board-1@tenant.example>
To: board@tenant.example, Expanded: directors@tenant.example
Cc: counsel@law.example
Bcc: hidden@elsewhere.example
Recipient: ceo@tenant.example, Forwarded: ceo.old@tenant.example

--jr
Content-Type: message/rfc822

From: CEO <ceo@tenant.example>
To: directors@tenant.example
Subject: Board pack
Message-ID: <board-1@tenant.example>

The orchard gate code changes every second Tuesday of the month
--jr--
EOF
id=$(swaks --server "$smtp" --from ndr@tenant.example --to journal@sensor.test --data journal.eml 2>&1 | queued_id)
[ -n "$id" ] || fail "journal report got no 250"
took=$(await "$id")
rec=$(record "$id")
got=$(jq -c '[.source.kind, .message.subject, .message.message_id, [.journal.recipients[] | [.address, .type, (.expanded_from // ""), (.forwarded_from // "")]]]' <<<"$rec")
want='["exchange_journal","Board pack","<board-1@tenant.example>",[["board@tenant.example","to","directors@tenant.example",""],["counsel@law.example","cc","",""],["hidden@elsewhere.example","bcc","",""],["ceo@tenant.example","recipient","","ceo.old@tenant.example"]]]'
[ "$got" = "$want" ] || fail "journal record: got $got, want $want"
echo "e2e-swaks: synthetic journal report OK (${took}ms)"

corpus="$here/../shared/corpus/formats"
if [ -d "$corpus" ]; then
  for f in "$corpus"/exo-journal-report-*.eml; do
    id=$(swaks --server "$smtp" --from ndr@tenant.example --to journal@sensor.test --data "$f" 2>&1 | queued_id)
    [ -n "$id" ] || fail "$(basename "$f") got no 250"
    await "$id" >/dev/null
    rec=$(record "$id")
    [ "$(jq -r '.message.subject + " " + .message.message_id' <<<"$rec")" = "INVOICE PDL-06-38776 <13268020124593518925.93733CB7019D1C46@company.com>" ] \
      || fail "$(basename "$f"): $(jq -c .message <<<"$rec" | head -c 300)"
    want_n=$(grep -c '^Recipient:' "$f")
    [ "$(jq '.journal.recipients | length' <<<"$rec")" = "$want_n" ] || fail "$(basename "$f"): recipients $(jq -c .journal <<<"$rec")"
    echo "e2e-swaks: $(basename "$f") OK ($want_n recipients)"
  done
else
  echo "e2e-swaks: shared corpus not found at $corpus; only the synthetic journal report was sent"
fi

# 3. The body sentence is nowhere: not in records, spool, outbox or logs.
if grep -rl "orchard gate" out data sensor.log receiver.log; then fail "body text found in the files above"; fi
echo "e2e-swaks: no body text in records, spool or logs"

# 4. SIGTERM: the sensor drains and exits 0.
kill -TERM "${pids[1]}"
wait "${pids[1]}" || fail "sensor exited $? on SIGTERM"
grep -q "sensor stopped" sensor.log || fail "no clean shutdown in the log"

# 5. A sensor set up as the docs tell an operator to (docs/sources/, docs/access/): an access
# table, STARTTLS required, an unguessable journal address, the tenant pinned, and a source
# header for a gateway. Each proof is tried with swaks, once as the customer and once not.
[ -d "$corpus" ] || fail "the trusted-source checks need the shared corpus's journal report at $corpus"
openssl rand -hex 24 > source-secret
secret=$(cat source-secret)
cat > trusted.yaml <<'EOF'
access:
  - name: journal-senders
    cidrs: [127.0.0.1/32]
    action: accept
    require_tls: true
  - name: everyone-else
    cidrs: [0.0.0.0/0, "::/0"]
    action: reject
EOF
./sensor serve --config trusted.yaml --data-dir data2 --smtp-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --pipeline-url "https://$rcv" --pipeline-token-file token --pipeline-ca-file ca.pem \
  --tls-cert srv.pem --tls-key srv.key --journal-address journal-q7Zr2@sensor.test \
  --m365-tenant teamcompany.onmicrosoft.com --source-header X-Sensor-Source --source-header-secret-file source-secret \
  2> trusted.log &
pids+=($!)
wait_log trusted.log "sensor ready"
smtp=$(grep -o ' smtp=[0-9.:]*' trusted.log | head -1 | cut -d= -f2)
report="$corpus/exo-journal-report-single-rcpt.eml"
# send ARGS...: swaks's transcript, whatever it ended with.
send() { swaks --server "$smtp" --from journal.ndr@teamcompany.onmicrosoft.com "$@" 2>&1 || true; }

out=$(send --tls --to journal-q7Zr2@sensor.test --data "@$report")
id=$(queued_id <<<"$out")
[ -n "$id" ] || fail "the customer's journal report over STARTTLS got no 250: $out"
await "$id" >/dev/null
got=$(record "$id" | jq -c '[.source.verified_by, .source.tenant, .envelope.access_group, (.envelope.tls.version | startswith("TLS 1."))]')
want='[["journal_address","m365_tenant"],"teamcompany.onmicrosoft.com","journal-senders",true]'
[ "$got" = "$want" ] || fail "trusted journal record: got $got, want $want"
echo "e2e-swaks: pinned tenant over STARTTLS: 250, verified_by journal_address and m365_tenant"

grep -q ' 451 4.7.0 Must issue a STARTTLS command first' <<<"$(send --to journal-q7Zr2@sensor.test --data "@$report")" \
  || fail "a plain-text sender was not deferred with 451 4.7.0"
grep -q ' 550 5.1.1 Recipient not accepted' <<<"$(send --tls --to journal@sensor.test --data "@$report")" \
  || fail "a guessed journal address was not refused with 550 5.1.1"
sed 's/^X-OriginatorOrg: .*/X-OriginatorOrg: fabrikam.onmicrosoft.com/' "$report" > forged.eml
out=$(send --tls --to journal-q7Zr2@sensor.test --data @forged.eml)
grep -q '550 5.7.1 Origin not proven: names tenant fabrikam.onmicrosoft.com.*(ref ' <<<"$out" \
  || fail "a report from another tenant was not refused with 550 5.7.1 and a ref: $out"
out=$(send --tls --to journal-q7Zr2@sensor.test --header "X-Sensor-Source: $secret" --header "Subject: gateway copy" \
  --body "The orchard gate code changes every second Tuesday of the month")
id=$(queued_id <<<"$out")
[ -n "$id" ] || fail "a gateway copy with the source header got no 250: $out"
await "$id" >/dev/null
[ "$(record "$id" | jq -c .source.verified_by)" = '["journal_address","source_header"]' ] \
  || fail "gateway record: $(record "$id" | jq -c .source)"
grep -q '550 5.7.1 Origin not proven: .*source header does not match' \
  <<<"$(send --tls --to journal-q7Zr2@sensor.test --header "X-Sensor-Source: ${secret}x")" \
  || fail "a wrong source header was not refused with 550 5.7.1"
grep -q ' 554 5.7.1 .* Access denied' <<<"$(send --tls --local-interface 127.0.0.2 --to journal-q7Zr2@sensor.test)" \
  || fail "a client outside the access table was not greeted 554 5.7.1"
if grep -rl -e "$secret" -e "orchard gate" out data2 trusted.log; then fail "the source header's secret or body text is in the files above"; fi
echo "e2e-swaks: refused as promised: plain text 451 4.7.0, guessed address 550 5.1.1, other tenant and wrong secret 550 5.7.1, outside the table 554 5.7.1; the secret is in no record, spool or log"
echo "e2e-swaks: PASS"
