#!/bin/sh
# First model of a fresh stack: the mounted log (SINE_BASE_LOG) or, when none is given,
# the synthetic demo log; then one retrain cycle, which with no live model trains,
# builds the index and publishes. Does nothing once a model is live.
set -eu
: "${SINE_DATA_DIR:=/srv/data}" "${SINE_STORE:=/srv/bundles}"
if [ -f "$SINE_STORE/CURRENT" ]; then
  echo "a model is live already: $(cat "$SINE_STORE/CURRENT")"
  exit 0
fi
if [ -z "${SINE_BASE_LOG:-}" ] || [ ! -f "$SINE_BASE_LOG" ]; then
  SINE_BASE_LOG="$SINE_DATA_DIR/synthetic.csv"
  echo "no log mounted: generating the synthetic demo log at $SINE_BASE_LOG"
  sine synth --out "$SINE_BASE_LOG"
fi
export SINE_BASE_LOG
exec sine retrain ${SINE_BOOTSTRAP_ARGS:-}
