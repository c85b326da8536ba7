# The operator's image: multi-stage, slim, non-root, dependencies pinned by requirements/constraints.txt.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/constraints.txt ./requirements/constraints.txt
COPY operator ./operator
RUN python -m venv /venv \
 && /venv/bin/pip install --no-cache-dir --upgrade pip==26.3 \
 && /venv/bin/pip install --no-cache-dir -c requirements/constraints.txt .

FROM python:3.11-slim-bookworm
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin operator
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BIJ_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["python", "-m", "batch_inference_operator"]
CMD ["run", "--liveness=http://0.0.0.0:8080/healthz"]
