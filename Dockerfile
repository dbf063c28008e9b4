# The Blendtune server image: the server only (no embedded services, load tester or benchmarks:
# those are extras). compose.yaml provides PostgreSQL and Redis and sets
# BLENDTUNE_DATABASE_URL / BLENDTUNE_REDIS_URL.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server server
COPY rooms rooms
COPY dsp dsp
COPY db db
COPY migrations migrations
RUN pip install --no-cache-dir .
ENV BLENDTUNE_HOST=0.0.0.0 BLENDTUNE_PORT=8000 BLENDTUNE_DATA_DIR=/data
EXPOSE 8000
CMD ["blendtune", "serve", "--no-migrate"]
