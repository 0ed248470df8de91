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
# Workers, the CLI and Flower never run as root. The home folder is created here so that a named volume mounted
# on it starts out owned by this user.
RUN useradd --system --uid 10001 --user-group --home-dir /data/annotate --no-create-home annotate \
    && mkdir -p /data/annotate && chown annotate:annotate /data/annotate
USER 10001:10001
ENTRYPOINT ["annotate"]
CMD ["--help"]
