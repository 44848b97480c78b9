#!/bin/sh
# The trainer image's two jobs, one script (installed as sine-bootstrap and sine-nightly):
#
#   sine-bootstrap  the first model of a fresh stack: one `sine retrain`, which with no
#                   live model trains, indexes and publishes; does nothing once one is live.
#   sine-nightly    the nightly `sine retrain` (compose's scheduler, Kubernetes' CronJob),
#                   warm-started from the live model's run (--warm-start) unless
#                   SINE_NIGHTLY_WARM_START is 0, false, no or off: a fraction of a cold run's
#                   time for the same validation NDCG (bench/results/warm_vs_cold_beauty.md,
#                   retrain_warm.md); `sine retrain` starts cold, with a warning, when that
#                   run is gone. Bootstrap always starts cold (there is no live model).
#
# Both train on the same base log, chosen here and only here:
#   - SINE_BASE_LOG, when set, is the log; if the file is missing the job fails and says
#     which path it looked for. It never falls back to synthetic data.
#   - else SINE_LOG_FILE (docker-compose), a file name under SINE_INPUT_DIR (/srv/input),
#     is the log, with the same rule.
#   - else neither is set: the demo. The synthetic log lives at
#     $SINE_DATA_DIR/synthetic.csv on the data volume, so that the nightly retrain trains
#     on the very log the first model was trained on; bootstrap generates it.
# Extra arguments go to `sine retrain` (SINE_RETRAIN_ARGS too, e.g. "--epochs 5"), after
# the job's own --warm-start, so that --no-warm-start among them wins;
# SINE_SYNTH_ARGS to `sine synth` (e.g. "--users 500 --items 300" for a quicker demo).
set -eu
: "${SINE_DATA_DIR:=/srv/data}" "${SINE_STORE:=/srv/bundles}" "${SINE_INPUT_DIR:=/srv/input}"
job=$(basename "$0")
warm=""

fail() { echo "$job: $*" >&2; exit 1; }

if [ -n "${SINE_BASE_LOG:-}" ]; then
  base_log=$SINE_BASE_LOG
  [ -f "$base_log" ] || fail "SINE_BASE_LOG=$base_log: no such file. Mount the log there, or unset SINE_BASE_LOG to run on the synthetic demo log."
elif [ -n "${SINE_LOG_FILE:-}" ]; then
  base_log=$SINE_INPUT_DIR/$SINE_LOG_FILE
  [ -f "$base_log" ] || fail "SINE_LOG_FILE=$SINE_LOG_FILE: no such file $base_log. With docker compose, SINE_LOG_DIR is the host directory mounted at $SINE_INPUT_DIR and SINE_LOG_FILE a file in it."
else
  base_log=$SINE_DATA_DIR/synthetic.csv
  echo "$job: no log configured (SINE_BASE_LOG, SINE_LOG_FILE): demo mode on the synthetic log $base_log"
fi

case "$job" in
  sine-bootstrap)
    if [ -f "$SINE_STORE/CURRENT" ]; then
      echo "$job: a model is live already: $(cat "$SINE_STORE/CURRENT")"
      exit 0
    fi
    if [ "$base_log" = "$SINE_DATA_DIR/synthetic.csv" ] && [ ! -f "$base_log" ]; then
      mkdir -p "$SINE_DATA_DIR"
      # shellcheck disable=SC2086  # SINE_SYNTH_ARGS is a list of flags
      sine synth ${SINE_SYNTH_ARGS:-} --out "$base_log.tmp.csv" && mv "$base_log.tmp.csv" "$base_log"
    fi
    ;;
  sine-nightly)
    [ -f "$base_log" ] || fail "$base_log does not exist: sine-bootstrap makes it on the first start of the stack."
    case $(printf '%s' "${SINE_NIGHTLY_WARM_START:-1}" | tr '[:upper:]' '[:lower:]') in
      1|true|yes|on) warm=--warm-start ;;
      0|false|no|off) ;;
      *) fail "SINE_NIGHTLY_WARM_START=$SINE_NIGHTLY_WARM_START: give 1, true, yes or on (warm start, the default) or 0, false, no or off (cold)" ;;
    esac
    ;;
  *) fail "run as sine-bootstrap or sine-nightly (got $job)" ;;
esac

export SINE_BASE_LOG="$base_log"
# shellcheck disable=SC2086  # SINE_RETRAIN_ARGS is a list of flags; $warm one or none
exec sine retrain $warm ${SINE_RETRAIN_ARGS:-} "$@"
