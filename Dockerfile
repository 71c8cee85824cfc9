# tokenwarden: operator, authenticator and CLI in one small image.
# Build: docker build -t tokenwarden:0.1.0 .
#    or, without Docker: make image (buildah, on a Debian base made with mmdebstrap)
# BASE_IMAGE is any Debian bookworm image with python3 and python3-venv; both stages use it,
# because the virtualenv links to the base's interpreter (/usr/local/bin or /usr/bin).
# Dependencies come from requirements.lock, pinned with hashes; regenerate it with `make lock`.
# The final stage has no compiler, no pip, no pip cache, runs as a non-root user and works
# with a read-only root filesystem (only /tmp needs to be writable).
ARG BASE_IMAGE=python:3.11.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
RUN python3 -m venv /opt/tokenwarden \
    && /opt/tokenwarden/bin/pip install --no-compile --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY operator ./operator
# setuptools and wheel (pinned in the lock) build tokenwarden itself and are removed
# afterwards, with pip, once pip check has found every dependency in place. The
# kubernetes client's asyncio twin (kubernetes/aio, a third of the image) is never
# imported: tokenwarden uses the synchronous client and kopf its own.
RUN /opt/tokenwarden/bin/pip install --no-compile --no-build-isolation --no-deps . \
    && /opt/tokenwarden/bin/pip uninstall --yes setuptools wheel \
    && /opt/tokenwarden/bin/pip check \
    && /opt/tokenwarden/bin/pip uninstall --yes pip \
    && rm -rf /opt/tokenwarden/lib/python3*/site-packages/kubernetes/aio \
    && /opt/tokenwarden/bin/python3 -m compileall -q --invalidation-mode unchecked-hash /opt/tokenwarden/lib

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="tokenwarden" \
      org.opencontainers.image.description="Service accounts, role bindings, service tokens and ingestion API keys as Kubernetes custom resources" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/tokenwarden/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# useradd dates the account by SOURCE_DATE_EPOCH when the build passes one (make image does).
ARG SOURCE_DATE_EPOCH
RUN groupadd --system --gid 10001 tokenwarden \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --no-log-init \
       --shell /usr/sbin/nologin tokenwarden
COPY --from=build /opt/tokenwarden /opt/tokenwarden
USER 10001:10001
EXPOSE 8080 9090 9443
ENTRYPOINT ["tokenwarden"]
CMD ["operator", "--all-namespaces"]
