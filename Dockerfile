# FastTTS image: one image for the API, the job workers and the migration job.
# CPU torch by default; build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 for GPUs.
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 FASTTTS_DATA_DIR=/data

RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg libsndfile1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fasttts ./fasttts
COPY api ./api
COPY workers ./workers
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --extra-index-url "$TORCH_INDEX" .

VOLUME /data
EXPOSE 8000
CMD ["fasttts", "serve", "--host", "0.0.0.0", "--port", "8000"]
