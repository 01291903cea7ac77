# syntax=docker/dockerfile:1
#
# One image for every Customer Request System process: the five services and the `crs` tool.
#   docker build -t crs:latest .
#   docker run --rm crs:latest python -m services.intake   (or validation, routing, resolution, audit)
#   docker run --rm crs:latest python -m crs.cli topics create
#
# NOTE: written from the python, uv and Docker documentation; no Docker engine runs on the
# development machines, so this file has not been built there. The two `uv sync` steps were
# checked outside Docker with uv 0.13.8 and Python 3.11.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: resolve the locked dependencies into /opt/venv ---------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install --no-cache-dir uv==0.13.8

WORKDIR /src

# Dependencies first, on their own layer: it is rebuilt only when pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the project itself, installed as a regular (non-editable) package so that the runtime
# stage needs nothing but the virtual environment.
COPY README.md ./
COPY shared ./shared
COPY services ./services
COPY crs ./crs
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# ---- runtime: the virtual environment and a non-root user ----------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 crs \
    && useradd --system --uid 10001 --gid crs --home-dir /app --no-create-home --shell /usr/sbin/nologin crs \
    && mkdir -p /app \
    && chown crs:crs /app

# Same base image and same path as in the build stage, so the venv's interpreter links stay valid.
COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOG_FORMAT=json

WORKDIR /app
USER 10001:10001

# Every service serves GET /health here when CRS_<SERVICE>_HEALTH_PORT=8080 and
# CRS_<SERVICE>_HEALTH_HOST=0.0.0.0 (docker-compose.yml and deploy/ set both).
EXPOSE 8080

# No default service: pick one with the command, e.g. `python -m services.routing`.
CMD ["python", "-m", "crs.cli", "--help"]
