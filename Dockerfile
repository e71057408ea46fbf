# syntax=docker/dockerfile:1
# Two images from one file:
#   sqs-local  a local SQS-compatible server (ministack) for development: compose's `sqs`
#   intentq    the `intentq` command: workers, init, and the operator tools (default target)

FROM python:3.11-slim AS sqs-local
# ministack pins its own botocore: it gets an image of its own, apart from intentq.
RUN pip install --no-cache-dir "ministack==1.5.33"
ENV SERVICES=sqs \
    BIND_HOST=0.0.0.0 \
    GATEWAY_PORT=4566
EXPOSE 4566
HEALTHCHECK --interval=5s --timeout=3s --retries=20 \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 4566), 2)"]
CMD ["ministack"]


FROM python:3.11-slim AS intentq
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install --no-cache-dir "uv==0.13.8"
WORKDIR /src
# Dependencies first, from the lock file: this layer stays cached while the code changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --extra sqs --no-install-project
COPY intentq ./intentq
RUN uv sync --frozen --extra sqs --no-editable
RUN useradd --create-home --uid 10001 intentq
USER intentq
WORKDIR /home/intentq
# Your tools: mount or copy your package here and set INTENTQ_APP=yourpackage.tools:registry.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/home/intentq
ENTRYPOINT ["intentq"]
CMD ["--help"]
