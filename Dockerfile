# tokenwarden: operator, authenticator and CLI in one small image.
# Build: docker build -t tokenwarden:0.1.0 .
# The final stage has no compiler, no pip cache, runs as a non-root user and works
# with a read-only root filesystem (only /tmp needs to be writable).

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/tokenwarden \
    && /opt/tokenwarden/bin/pip install --no-compile . \
    && /opt/tokenwarden/bin/python -m compileall -q /opt/tokenwarden/lib

FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="tokenwarden" \
      org.opencontainers.image.description="Service accounts, role bindings, service tokens and ingestion API keys as Kubernetes custom resources" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/tokenwarden/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 tokenwarden \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tokenwarden
COPY --from=build /opt/tokenwarden /opt/tokenwarden
USER 10001:10001
EXPOSE 8080 9090 9443
ENTRYPOINT ["tokenwarden"]
CMD ["operator", "--all-namespaces"]
