# Images of the SINE recommendation service, from one Dockerfile (build context: the
# repository root). Builds use no network and no package index: Python packages come from
# deploy/wheelhouse/, which `bash deploy/images/wheelhouse.sh` fills on the host from
# requirements/lock.txt (air-gapped sites build the same way).
#
#   bash deploy/images/wheelhouse.sh                                   # once, on the host
#   docker build --target api     -t sine-api .                        # service: no torch
#   docker build --target trainer -t sine-trainer .                    # train, index, retrain
#
# Build arguments:
#   BASE_IMAGE  default python:3.11-slim; where no registry answers, the Debian image that
#               `bash deploy/images/base.sh` makes: --build-arg BASE_IMAGE=sine-base:bookworm
#   VARIANT     cpu (default) or gpu: onnxruntime-gpu, faiss-gpu-cu12 and the CUDA build of
#               torch from deploy/wheelhouse/gpu/ (wheelhouse.sh --gpu); run it with the
#               NVIDIA container runtime.
#
# Stages are ordered so that the classic builder, which builds every stage before the
# target, never builds torch for the api target.
# Plain `docker build` (BuildKit or the classic builder) and docker-compose 1.29 / Compose
# v2 all build it: no syntax directive (it would pull a front-end image), no BuildKit-only
# instructions (build mounts).

ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INDEX=1 \
    PIP_FIND_LINKS=/wheelhouse \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# /srv/* are volumes in compose and Kubernetes: a named volume starts with the ownership
# of its mount point in the image, so the non-root user can write to it.
RUN groupadd --system --gid 10001 sine \
    && useradd --system --uid 10001 --gid sine --home-dir /app --shell /usr/sbin/nologin sine \
    && mkdir -p /srv/data /srv/bundles /srv/input \
    && chown sine:sine /srv/data /srv/bundles
WORKDIR /app

# ---- the wheelhouse and the lists of what each image installs (no project code: these
#      layers stay cached while the code changes)
FROM base AS wheels
COPY deploy/wheelhouse/ /wheelhouse/
COPY requirements/lock.txt requirements/gpu.txt /src/
RUN if ! ls /wheelhouse/*.whl /wheelhouse/api.txt /wheelhouse/trainer.txt >/dev/null 2>&1; then \
      echo "deploy/wheelhouse/ is empty or stale: run 'bash deploy/images/wheelhouse.sh' on the host first" >&2; \
      exit 1; \
    fi

# ---- the project's own wheel (the only layers a code change rebuilds)
FROM wheels AS project
RUN python3 -m venv /opt/build && /opt/build/bin/pip install -q setuptools wheel
COPY pyproject.toml README.md /src/
COPY sine /src/sine
COPY sine_cli /src/sine_cli
COPY trainer /src/trainer
COPY index_builder /src/index_builder
COPY service /src/service
COPY deploy/*.py /src/deploy/
RUN /opt/build/bin/pip wheel -q --no-deps --no-build-isolation --wheel-dir /dist /src

# ---- the service's dependencies: onnxruntime + faiss + numpy, never torch
FROM wheels AS api-deps
ARG VARIANT=cpu
RUN python3 -m venv /opt/venv \
    && pip install -q -c /src/lock.txt -r /wheelhouse/api.txt \
    && if [ "$VARIANT" = "gpu" ]; then \
         pip uninstall -q -y onnxruntime faiss-cpu \
         && pip install -q --find-links /wheelhouse/gpu -r /src/gpu.txt; \
       fi \
    && if python3 -c "import torch" 2>/dev/null; then echo "torch leaked into the api image" >&2; exit 1; fi

FROM base AS api
COPY --from=api-deps /opt/venv /opt/venv
COPY --from=project /dist/ /tmp/dist/
RUN pip install -q --no-deps /tmp/dist/*.whl && rm -rf /tmp/dist
USER 10001:10001
EXPOSE 8000
ENV SINE_BUNDLE=/srv/bundles
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["sine"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

# ---- training, index building, the nightly retrain and its scheduler
FROM wheels AS trainer-deps
ARG VARIANT=cpu
RUN python3 -m venv /opt/venv \
    && if [ "$VARIANT" = "gpu" ]; then \
         pip install -q --find-links /wheelhouse/gpu /wheelhouse/gpu/torch-*.whl; \
       fi \
    && pip install -q -c /src/lock.txt -r /wheelhouse/trainer.txt \
    && if [ "$VARIANT" = "gpu" ]; then \
         pip uninstall -q -y onnxruntime faiss-cpu \
         && pip install -q --find-links /wheelhouse/gpu -r /src/gpu.txt; \
       fi

FROM base AS trainer
COPY --from=trainer-deps /opt/venv /opt/venv
COPY --from=project /dist/ /tmp/dist/
RUN pip install -q --no-deps /tmp/dist/*.whl && rm -rf /tmp/dist
COPY deploy/stack-job.sh /usr/local/bin/sine-stack-job
RUN ln -s sine-stack-job /usr/local/bin/sine-bootstrap && ln -s sine-stack-job /usr/local/bin/sine-nightly
USER 10001:10001
ENV SINE_DATA_DIR=/srv/data SINE_STORE=/srv/bundles MPLCONFIGDIR=/tmp/matplotlib
ENTRYPOINT ["sine"]
CMD ["--help"]
