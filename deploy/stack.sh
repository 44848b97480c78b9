#!/usr/bin/env bash
# The local stack in one command, on any host with a Docker engine and Compose (v2's
# `docker compose` or docker-compose 1.29):
#
#   bash deploy/stack.sh up              build what is missing, start, wait for /readyz
#   bash deploy/stack.sh down [-v]       stop (-v: and delete the volumes)
#   bash deploy/stack.sh build           build the images only
#   bash deploy/stack.sh compose ARGS    any compose command with the same settings
#                                        (logs -f api, ps, exec -T scheduler sine-nightly ...)
#
# `up` keeps the log it started on (SINE_LOG_DIR, SINE_LOG_FILE) in deploy/.stack.<project>.env, so a
# later `up` without them goes on with the same log (the nightly retrain trains on it);
# `down -v` forgets it with the volumes.
# What `up` prepares, each step only when needed:
#   - deploy/wheelhouse/: the wheels the images install (deploy/images/wheelhouse.sh),
#     refilled when requirements/lock.txt or pyproject.toml changed;
#   - base images: python:3.11-slim and redis:7.2-alpine when a registry answers, else
#     local Debian images (deploy/images/base.sh); the choice is kept in
#     deploy/.stack.<project>.env so later commands use the same images.
# Settings are those of docker-compose.yml (SINE_LOG_DIR, SINE_LOG_FILE, SINE_API_PORT,
# SINE_ADMIN_TOKEN, ...), from the environment; SINE_STACK_NO_BUILD=1 makes `up` use the
# images as they are (no rebuild check).
set -euo pipefail
cd "$(dirname "$0")/.."

# Per compose project, so that the stack test (its own project) never picks up a user's log.
STACK_ENV=deploy/.stack.${COMPOSE_PROJECT_NAME:-sine-rec}.env
die() { echo "stack.sh: $*" >&2; exit 1; }
say() { echo "stack.sh: $*" >&2; }

docker info >/dev/null 2>&1 || die "no Docker engine answers: start it (systemctl start docker, or dockerd &) or install one (Debian/Ubuntu: apt-get install docker.io)"
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  COMPOSE=(docker-compose)
else
  die "Docker Compose is not installed (the v2 plugin, or Debian's docker-compose)"
fi

# The images and the log chosen by an earlier `up`, unless the environment says otherwise.
if [ -f "$STACK_ENV" ]; then
  while IFS='=' read -r key value; do
    if [ -n "$key" ] && [ -z "${!key:-}" ]; then
      export "$key=$value"
      case "$key" in SINE_LOG_*) say "$key=$value (kept from the stack's first start; down -v forgets it)" ;; esac
    fi
  done < "$STACK_ENV"
fi

# remember KEY VALUE: keep a setting in $STACK_ENV for later commands.
remember() {
  touch "$STACK_ENV"
  grep -v "^$1=" "$STACK_ENV" > "$STACK_ENV.new" || true
  [ -z "$2" ] || echo "$1=$2" >> "$STACK_ENV.new"
  mv "$STACK_ENV.new" "$STACK_ENV"
}

# check_log: a configured log must exist on the host before anything starts (compose would
# otherwise create the directory, and the first model would fail inside a container).
check_log() {
  if [ -n "${SINE_LOG_FILE:-}" ]; then
    [ -n "${SINE_LOG_DIR:-}" ] || die "SINE_LOG_FILE=$SINE_LOG_FILE needs SINE_LOG_DIR, the host directory that holds it"
    [ -f "$SINE_LOG_DIR/$SINE_LOG_FILE" ] || die "no such file: $SINE_LOG_DIR/$SINE_LOG_FILE (SINE_LOG_DIR/SINE_LOG_FILE)"
    SINE_LOG_DIR=$(cd "$SINE_LOG_DIR" && pwd)
    export SINE_LOG_DIR
  elif [ -n "${SINE_LOG_DIR:-}" ]; then
    die "SINE_LOG_DIR=$SINE_LOG_DIR is set but SINE_LOG_FILE is not: name the log file in it"
  fi
}

compose() { "${COMPOSE[@]}" "$@"; }

wheelhouse() {
  if [ -f deploy/wheelhouse.sha256 ] && sha256sum --status -c deploy/wheelhouse.sha256 2>/dev/null \
     && ls deploy/wheelhouse/*.whl >/dev/null 2>&1; then
    return
  fi
  say "filling deploy/wheelhouse/ (requirements/lock.txt changed or never done) ..."
  bash deploy/images/wheelhouse.sh
}

# have_or_pull IMAGE: the image is here, or a registry gives it to us.
have_or_pull() {
  docker image inspect "$1" >/dev/null 2>&1 || docker pull -q "$1" >/dev/null 2>&1
}

base_images() {
  if [ -n "${SINE_BASE_IMAGE:-}" ] && [ -n "${SINE_REDIS_IMAGE:-}" ]; then
    return
  fi
  if have_or_pull python:3.11-slim && have_or_pull redis:7.2-alpine; then
    SINE_BASE_IMAGE=python:3.11-slim SINE_REDIS_IMAGE=redis:7.2-alpine
  else
    say "no registry answers: building local Debian base images (deploy/images/base.sh) ..."
    bash deploy/images/base.sh
    SINE_BASE_IMAGE=sine-base:bookworm SINE_REDIS_IMAGE=sine-redis:bookworm
  fi
  export SINE_BASE_IMAGE SINE_REDIS_IMAGE
  remember SINE_BASE_IMAGE "$SINE_BASE_IMAGE"
  remember SINE_REDIS_IMAGE "$SINE_REDIS_IMAGE"
}

build() {
  wheelhouse
  base_images
  compose build
}

# state SERVICE: its container's "status exit-code restart-count", empty when it has none.
state() {
  local id
  id=$(compose ps -q "$1" 2>/dev/null | head -1)
  [ -n "$id" ] && docker inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}' "$id" 2>/dev/null
}

# failed SERVICE WHAT: print the service's last log lines and stop.
failed() {
  compose logs --tail 30 "$1" >&2 || true
  die "$2 (the log of $1 above; more: bash deploy/stack.sh compose logs $1)"
}

# wait_ready SECONDS: until the API answers /readyz with 200, or say why not as soon as
# the first model failed or the API keeps exiting.
wait_ready() {
  local url="http://127.0.0.1:${SINE_API_PORT:-8000}/readyz" deadline=$((SECONDS + $1)) api
  while [ "$SECONDS" -lt "$deadline" ]; do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url" 2>/dev/null; then
      return 0
    fi
    case "$(state init)" in exited\ [1-9]*) failed init "the first model failed" ;; esac
    api=$(state api)
    case "$api" in
      exited\ [1-9]*|restarting\ *) failed api "the API exits at start" ;;
      *\ [1-9]) failed api "the API restarted ${api##* } times" ;;
    esac
    sleep 2
  done
  compose ps >&2
  die "the API did not become ready within $1 s (bash deploy/stack.sh compose logs init api)"
}

case "${1:-}" in
  up)
    shift
    check_log
    if [ "${SINE_STACK_NO_BUILD:-0}" = 1 ]; then base_images; else build; fi
    started=$SECONDS
    # docker-compose 1.29 fails `up` itself when init fails: say why, not only its exit code.
    if ! compose up -d "$@"; then
      case "$(state init)" in exited\ [1-9]*) failed init "the first model failed" ;; esac
      die "compose up failed (above)"
    fi
    remember SINE_LOG_DIR "${SINE_LOG_DIR:-}"
    remember SINE_LOG_FILE "${SINE_LOG_FILE:-}"
    say "waiting for the first model (training it on first start takes minutes) ..."
    wait_ready "${SINE_UP_TIMEOUT:-1800}"
    say "ready after $((SECONDS - started)) s: http://127.0.0.1:${SINE_API_PORT:-8000}/openapi.json is the API's schema"
    echo "curl -s 127.0.0.1:${SINE_API_PORT:-8000}/recommend -H 'content-type: application/json' -d '{\"clicks\": [\"i1\", \"i2\"], \"top_n\": 5}'"
    ;;
  build) build ;;
  down)
    shift
    compose down "$@"
    case " $* " in *" -v "*|*" --volumes "*) remember SINE_LOG_DIR ""; remember SINE_LOG_FILE "" ;; esac
    ;;
  compose) shift; compose "$@" ;;
  *) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
