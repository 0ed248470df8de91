# One image for the CLI, the migrate job and the workers.
#   CPU:  docker build -t annotate .
#   GPU:  docker build --build-arg TENSORFLOW="tensorflow[and-cuda]>=2.16" -t annotate:gpu .
FROM python:3.11-slim
ARG TENSORFLOW=""
ENV PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 ANNOTATE_HOME=/data/annotate
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY annotator annotator
COPY worker worker
COPY db db
COPY migrations migrations
RUN pip install --no-cache-dir '.[service,cloud]' \
    && if [ -n "$TENSORFLOW" ]; then pip uninstall -y tensorflow-cpu && pip install --no-cache-dir "$TENSORFLOW"; fi
ENTRYPOINT ["annotate"]
CMD ["--help"]
