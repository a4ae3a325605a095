# FastTTS images: each serves the API, runs job workers and the migrations. Three targets:
#   cpu (the default: the last stage) - CPU torch from PyTorch's CPU index, the torch backend;
#   gpu         - CUDA torch from PyPI with vLLM (`.[vllm]`), and gcc, which Triton needs at run time;
#   gpu-sglang  - the same with SGLang (`.[sglang]`): vLLM and SGLang pin different torch and numba, so
#                 they cannot share one image.
#   docker build --target gpu -t fasttts:gpu .      (docker-compose.yml's GPU worker does this)
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 FASTTTS_DATA_DIR=/data
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg libsndfile1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fasttts ./fasttts
COPY api ./api
COPY workers ./workers
COPY migrations ./migrations
COPY alembic.ini ./
VOLUME /data
EXPOSE 8000
CMD ["fasttts", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS gpu-base
# Triton compiles its CUDA launcher with the system C compiler on first use
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*

# (DL3013: this is our own package; its pyproject.toml holds the ranges, checked by scripts/check_extras.sh)
FROM gpu-base AS gpu
# hadolint ignore=DL3013
RUN pip install ".[vllm]"

FROM gpu-base AS gpu-sglang
# hadolint ignore=DL3013
RUN pip install ".[sglang]"

FROM base AS cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# g++ builds FastTTS's x86 kernels (int8/bfloat16 linears, decode attention): here once, for the build host's CPU (another CPU builds its own on first use)
ENV TORCH_EXTENSIONS_DIR=/opt/fasttts/torch_extensions
RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*
RUN pip install --extra-index-url "$TORCH_INDEX" . && python -m fasttts.backends.torch_llm.x86_kernels
