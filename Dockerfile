# syntax=docker/dockerfile:1.7
# The NexusCart application image: the edge and every service run from it (docker-compose.yml
# picks the command per container). Multi-stage, so the Rust toolchain, the cargo build tree
# and the build tools never reach the image that runs in production.
#
#   rust     the official Rust toolchain image, used only as a source of /usr/local/{cargo,rustup}
#   builder  python + that toolchain + maturin -> the nexuscart wheel (abi3, with nexuscart._core)
#   app-src  the Python sources of the processes (edge/, services/, deploy/)
#   runtime  python:3.11-slim + the wheel + its locked runtime deps + the process sources

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# Keep in step with the toolchain scripts/bootstrap uses (edition 2024 needs Rust >= 1.85).
ARG RUST_IMAGE=rust:1.95-slim-bookworm

FROM ${RUST_IMAGE} AS rust

FROM ${PYTHON_IMAGE} AS builder
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A copied toolchain instead of `curl | sh rustup`: pinned by the image tag, no network script.
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
# rustc links through the system C compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# maturin at the version the lock pins, so image and dev builds agree.
COPY requirements.lock ./
RUN pip install "maturin==$(sed -n 's/^maturin==//p' requirements.lock)"
COPY Cargo.toml Cargo.lock pyproject.toml ./
COPY core_rs/ core_rs/
COPY py/ py/
# Cache mounts keep the crates index and incremental artifacts across builds; the wheel is
# written outside them (/dist) so the next stage can copy it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    maturin build --release --locked --out /dist

FROM ${PYTHON_IMAGE} AS app-src
WORKDIR /src
COPY . .
# services/ can be empty in a fresh checkout (git keeps no empty folders), and COPY --from
# fails on a missing path; an empty folder copies fine.
RUN mkdir -p edge services deploy

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    EDGE_HOST=0.0.0.0 \
    EDGE_PORT=8000 \
    EDGE_WORKERS=2
RUN useradd --system --uid 10001 --no-create-home --home-dir /app nexuscart
WORKDIR /app
# The wheel pulls its own dependencies; requirements.lock as a *constraint* (-c) pins them to
# the versions we test with without installing the dev tools (pytest, locust, ...) it also lists.
COPY --from=builder /dist/ /tmp/dist/
COPY requirements.lock /tmp/requirements.lock
RUN pip install -c /tmp/requirements.lock /tmp/dist/*.whl \
 && rm -rf /tmp/dist /tmp/requirements.lock
COPY --from=app-src /src/edge/ edge/
COPY --from=app-src /src/services/ services/
COPY --from=app-src /src/deploy/migrate.py deploy/migrate.py
USER nexuscart
EXPOSE 8000
# sh -c only to expand the EDGE_* settings; exec hands PID 1 (and SIGTERM) to Granian.
CMD ["sh", "-c", "exec granian --interface rsgi --host \"$EDGE_HOST\" --port \"$EDGE_PORT\" --workers \"$EDGE_WORKERS\" --loop uvloop --no-ws --backlog 4096 --backpressure 16384 edge.app:app"]
