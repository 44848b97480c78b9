#!/usr/bin/env bash
# The stack test: the compose stack built, started and exercised against the real engine,
# then removed. Traffic goes to 127.0.0.1 only. Also driven by tests/test_stack.py.
#
#   bash deploy/smoke.sh            # exit 0: every check passed; a JSON report is written
#
# 1. build the images (deploy/stack.sh: wheelhouse, base images when no registry answers)
#    and check that the api image has no torch;
# 2. `up`: the first model is trained on a small synthetic log; time to the first 200;
# 3. POST /recommend answers from it; POST /events is acknowledged;
# 4. the nightly retrain runs inside the stack (the scheduler container) while a light
#    load runs on /recommend: the api swaps to the new version with zero failed requests;
#    the events recorded before it are in the event store, exactly once;
# 5. events after it; then the stack is taken down (volumes kept) and up again: histories
#    and events are still in Redis (append-only volume), the live version is unchanged;
# 6. the admin API refuses without the configured token and accepts it; a placeholder
#    token and a missing log are refused at `up`, with messages that say why;
# 7. `down -v`.
#
# Settings: SINE_SMOKE_PORT (default 18000), SINE_SMOKE_PROJECT (sine-smoke),
# SINE_SMOKE_REPORT (default /tmp/sine-smoke-report.json), SINE_SMOKE_KEEP=1 to leave the
# stack running for a look.
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROJECT_NAME=${SINE_SMOKE_PROJECT:-sine-smoke}
export SINE_API_PORT=${SINE_SMOKE_PORT:-18000} SINE_API_BIND=127.0.0.1
SINE_ADMIN_TOKEN=smoke-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export SINE_ADMIN_TOKEN
export SINE_BOOTSTRAP_ARGS="--epochs 2" SINE_SYNTH_ARGS="--users 600 --items 300 --groups 12"
export SINE_RETRAIN_CRON="0 3 1 1 *"   # the test runs the nightly itself
unset SINE_LOG_DIR SINE_LOG_FILE SINE_BASE_LOG
REPORT=${SINE_SMOKE_REPORT:-/tmp/sine-smoke-report.json}
WORK=$(mktemp -d /tmp/sine-smoke.XXXXXX)
API=http://127.0.0.1:$SINE_API_PORT
STARTED=$SECONDS

stack() { bash deploy/stack.sh "$@"; }
step() { echo "smoke: [$((SECONDS - STARTED)) s] $*"; }
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }

cleanup() {
  local code=$?
  [ -f "$WORK/stop" ] || touch "$WORK/stop"
  wait 2>/dev/null || true
  if [ "$code" != 0 ]; then
    echo "smoke: logs of the stack:" >&2
    stack compose logs --tail 40 >&2 2>&1 || true
  fi
  if [ "${SINE_SMOKE_KEEP:-0}" != 1 ]; then
    stack compose down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit "$code"
}
trap cleanup EXIT

# json FILE EXPRESSION: a value out of a JSON document (`d` is the document).
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
post() {  # post PATH BODY [CURL ARGS]: the answer's body in $WORK/answer, the status on stdout
  local path=$1 body=$2; shift 2
  curl -sS -o "$WORK/answer" -w '%{http_code}' -H 'content-type: application/json' -d "$body" "$@" "$API$path"
}
redis_cli() { stack compose exec -T redis redis-cli "$@" | tr -d '\r'; }
live_version() { curl -sS "$API/model" > "$WORK/model" && json "$WORK/model" 'd["version"]'; }
wait_for() {  # wait_for SECONDS COMMAND...: until COMMAND succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}
recommend_ok() { [ "$(post /recommend '{"clicks": ["i1", "i2", "i3"], "top_n": 10}')" = 200 ]; }

stack compose down -v --remove-orphans >/dev/null 2>&1 || true

step "a configured log that is missing is refused before anything starts"
if SINE_LOG_DIR=/nonexistent-dir SINE_LOG_FILE=clicks.csv.gz stack up >"$WORK/nolog.log" 2>&1; then
  fail "up with a missing log did not fail"
fi
grep -q "no such file: /nonexistent-dir/clicks.csv.gz" "$WORK/nolog.log" || { cat "$WORK/nolog.log"; fail "no message naming the missing log"; }
[ -z "$(stack compose ps -q)" ] || fail "up with a missing log started containers"

step "build"
t=$SECONDS; stack build >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; fail "build"; }
build_seconds=$((SECONDS - t))
if docker run --rm --entrypoint python3 "sine-api:${SINE_TAG:-latest}" -c "import torch" 2>/dev/null; then
  fail "the api image has torch"
fi
export SINE_STACK_NO_BUILD=1  # built once above: the `up`s below start what was built
api_mb=$(docker image inspect -f '{{.Size}}' "sine-api:${SINE_TAG:-latest}" | awk '{printf "%d", $1/1e6}')
trainer_mb=$(docker image inspect -f '{{.Size}}' "sine-trainer:${SINE_TAG:-latest}" | awk '{printf "%d", $1/1e6}')

step "up (first model on a synthetic log)"
t=$SECONDS
stack up >"$WORK/up.log" 2>&1 || { tail -30 "$WORK/up.log"; fail "up"; }
wait_for 120 recommend_ok || fail "no 200 from /recommend after up"
up_seconds=$((SECONDS - t))
v1=$(live_version)
[ "$(json "$WORK/answer" 'd["model_version"]')" = "$v1" ] || fail "/recommend answered from another version than /model"
[ "$(json "$WORK/answer" 'len(d["items"])')" = 10 ] || fail "/recommend did not return 10 items"
step "live: $v1, first 200 on /recommend $up_seconds s after up"

events() {  # events FIRST COUNT: COUNT clicks spread over users smoke-u0..smoke-u4
  python3 -c "import json,sys; a,n=map(int,sys.argv[1:]); print(json.dumps([{'user_id': f'smoke-u{k % 5}', 'item_id': f'i{k % 50 + 1}'} for k in range(a, a + n)]))" "$1" "$2"
}
[ "$(post /events "$(events 0 50)")" = 200 ] || fail "POST /events: $(cat "$WORK/answer")"
[ "$(json "$WORK/answer" 'd["stored"]')" = 50 ] || fail "50 events not all acknowledged"

step "nightly retrain inside the stack, under load"
python3 deploy/smoke_load.py --port "$SINE_API_PORT" --out "$WORK/load.json" --stop-file "$WORK/stop" \
  --clicks i1 i2 i3 i4 --threads 2 --rate 20 --max-seconds 1200 &
sleep 2
t=$SECONDS
stack compose exec -T scheduler sine-nightly --epochs 1 --margin 1 >"$WORK/nightly.log" 2>&1 \
  || { tail -30 "$WORK/nightly.log"; fail "the nightly retrain did not promote (exit $?)"; }
retrain_seconds=$((SECONDS - t))
swap_check() { [ "$(live_version)" != "$v1" ]; }
wait_for 60 swap_check || fail "the api did not swap from $v1 to the new version"
v2=$(live_version)
sleep 3
touch "$WORK/stop"
wait
load_sent=$(json "$WORK/load.json" 'd["sent"]')
load_failed=$(json "$WORK/load.json" 'd["failed"]')
load_versions=$(json "$WORK/load.json" '" ".join(d["versions"])')
[ "$load_failed" = 0 ] || fail "$load_failed of $load_sent requests failed during the swap: $(json "$WORK/load.json" 'd["errors"]')"
[ "$load_versions" = "$v1 $v2" ] || fail "the load saw versions '$load_versions', not '$v1 $v2'"
exported=$(stack compose exec -T scheduler python3 -c \
  "import pandas as pd; print(len(pd.read_parquet('/srv/data/events')))" | tr -d '\r')
[ "$exported" = 50 ] || fail "the event store holds $exported events, not the 50 recorded before the retrain"
step "swapped $v1 -> $v2 under $load_sent requests, none failed; 50 events exported"

[ "$(post /events "$(events 50 40)")" = 200 ] || fail "POST /events after the retrain"
[ "$(json "$WORK/answer" 'd["stored"]')" = 40 ] || fail "40 events not all acknowledged"
acked=40
stream_before=$(redis_cli XLEN sine:events)
history_before=$(redis_cli LLEN sine:history:smoke-u1)
[ "$stream_before" = "$acked" ] || fail "the stream holds $stream_before events, $acked were acknowledged"
[ "$history_before" = 18 ] || fail "smoke-u1 has $history_before clicks, not 18"

step "down (volumes kept); up with a placeholder admin token is refused at once; up again"
stack compose down >/dev/null 2>&1
t=$SECONDS
if SINE_ADMIN_TOKEN=change-me stack up >"$WORK/placeholder.log" 2>&1; then
  fail "up with a placeholder admin token did not fail"
fi
grep -q "placeholder" "$WORK/placeholder.log" || { tail -20 "$WORK/placeholder.log"; fail "the refusal does not say why"; }
[ $((SECONDS - t)) -lt 300 ] || fail "the refusal took $((SECONDS - t)) s to report"
stack compose down >/dev/null 2>&1
stack up >"$WORK/up2.log" 2>&1 || { tail -30 "$WORK/up2.log"; fail "second up"; }
wait_for 120 recommend_ok || fail "no 200 from /recommend after the restart"
stream_after=$(redis_cli XLEN sine:events)
history_after=$(redis_cli LLEN sine:history:smoke-u1)
[ "$stream_after" = "$acked" ] || fail "after the restart the stream holds $stream_after events, not $acked"
[ "$history_after" = "$history_before" ] || fail "after the restart smoke-u1 has $history_after clicks, not $history_before"
[ "$(live_version)" = "$v2" ] || fail "after the restart the live version is $(live_version), not $v2"
[ "$(post /recommend '{"user_id": "smoke-u1", "clicks": [], "top_n": 5}')" = 200 ] || fail "/recommend by user"
[ "$(json "$WORK/answer" 'd["history"]')" = merged ] || fail "the stored history was not used after the restart"

step "admin API"
[ "$(post /admin/reload '{}')" = 401 ] || fail "/admin/reload without a token: $(cat "$WORK/answer")"
[ "$(post /admin/reload '{}' -H 'authorization: Bearer wrong')" = 401 ] || fail "/admin/reload with a wrong token"
[ "$(post /admin/reload '{}' -H "authorization: Bearer $SINE_ADMIN_TOKEN")" = 200 ] \
  || fail "/admin/reload with the token: $(cat "$WORK/answer")"

python3 - "$REPORT" <<EOF
import json, sys
report = {
    "compose": "$(bash deploy/stack.sh compose version --short 2>/dev/null | head -1)",
    "base_image": "$(grep SINE_BASE_IMAGE "deploy/.stack.$COMPOSE_PROJECT_NAME.env" 2>/dev/null | cut -d= -f2)",
    "build_seconds": $build_seconds, "api_image_mb": $api_mb, "trainer_image_mb": $trainer_mb,
    "up_to_first_recommend_seconds": $up_seconds, "nightly_retrain_seconds": $retrain_seconds,
    "versions": ["$v1", "$v2"],
    "load_during_swap": {"sent": $load_sent, "failed": $load_failed},
    "events": {"exported_before_retrain": $exported, "acknowledged_after": $acked,
               "in_stream_before_restart": $stream_before, "in_stream_after_restart": $stream_after},
    "history_clicks": {"before_restart": $history_before, "after_restart": $history_after},
    "total_seconds": $((SECONDS - STARTED)),
}
json.dump(report, open(sys.argv[1], "w"), indent=2)
print(json.dumps(report, indent=2))
EOF
step "passed (report: $REPORT)"
