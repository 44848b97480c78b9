#!/usr/bin/env bash
# The local stack in one command, on any host with a Docker engine and Compose (v2's
# `docker compose` or docker-compose 1.29):
#
#   bash deploy/stack.sh up              build what is missing, start, wait for /readyz
#   bash deploy/stack.sh down [-v]       stop (-v: and delete the volumes)
#   bash deploy/stack.sh build           build the images only
#   bash deploy/stack.sh compose ARGS    any compose command with the same settings
#                                        (logs -f api, ps, exec scheduler sine-nightly ...)
#
# What `up` prepares, each step only when needed:
#   - deploy/wheelhouse/: the wheels the images install (deploy/images/wheelhouse.sh),
#     refilled when requirements/lock.txt or pyproject.toml changed;
#   - base images: python:3.11-slim and redis:7.2-alpine when a registry answers, else
#     local Debian images (deploy/images/base.sh); the choice is kept in
#     deploy/.stack.env so later commands use the same images.
# Settings are those of docker-compose.yml (SINE_LOG_DIR, SINE_LOG_FILE, SINE_API_PORT,
# SINE_ADMIN_TOKEN, ...), from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."

STACK_ENV=deploy/.stack.env
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

# The images chosen by an earlier `up`, unless the environment says otherwise.
if [ -f "$STACK_ENV" ]; then
  while IFS='=' read -r key value; do
    [ -n "$key" ] && [ -z "${!key:-}" ] && export "$key=$value"
  done < "$STACK_ENV"
fi

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
  printf 'SINE_BASE_IMAGE=%s\nSINE_REDIS_IMAGE=%s\n' "$SINE_BASE_IMAGE" "$SINE_REDIS_IMAGE" > "$STACK_ENV"
}

build() {
  wheelhouse
  base_images
  compose build
}

# wait_ready SECONDS: until the API answers /readyz with 200, or say why not.
wait_ready() {
  local url="http://127.0.0.1:${SINE_API_PORT:-8000}/readyz" deadline=$((SECONDS + $1))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url" 2>/dev/null; then
      return 0
    fi
    if [ "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(compose ps -q init 2>/dev/null)" 2>/dev/null)" \
         = "exited 1" ]; then
      compose logs --tail 30 init >&2
      die "the first model failed (init's log above)"
    fi
    sleep 2
  done
  compose ps >&2
  die "the API did not become ready within $1 s (bash deploy/stack.sh compose logs init api)"
}

case "${1:-}" in
  up)
    shift
    build
    started=$SECONDS
    compose up -d "$@"
    say "waiting for the first model (training it on first start takes minutes) ..."
    wait_ready "${SINE_UP_TIMEOUT:-1800}"
    say "ready after $((SECONDS - started)) s: http://127.0.0.1:${SINE_API_PORT:-8000}/docs"
    echo "curl -s 127.0.0.1:${SINE_API_PORT:-8000}/recommend -H 'content-type: application/json' -d '{\"clicks\": [\"i1\", \"i2\"], \"top_n\": 5}'"
    ;;
  build) build ;;
  down) shift; compose down "$@" ;;
  compose) shift; compose "$@" ;;
  *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
