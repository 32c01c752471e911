# autonn-nas: the TANGO neck NAS stage (HTTP on port 8089).
#   docker build -t autonn-nas .
#   docker run --gpus all --init --ipc=host -v /path/to/shared:/shared -p 8089:8089 autonn-nas
# The server runs as uid 1000; for a host folder owned by someone else add --user "$(id -u):$(id -g)".
# The base image brings CUDA and the pinned torch/torchvision, so pip installs only the rest (with the export
# extra: onnx/onnxruntime, for the bestmodel.onnx that TensorRT/tflite/TVM/RKNN engines get).
ARG BASE_IMAGE=pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8089 \
    CONTAINER_ID=neck_nas \
    PROJECT_MANAGER_URL=http://projectmanager:8085 \
    SHARED_DIR=/shared \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app
COPY pyproject.toml README.md ./
COPY autonn_nas ./autonn_nas
COPY project_manager_stub ./project_manager_stub
COPY shared_volume ./shared_volume

# Fails the build if pip would replace the base image's torch (a CPU wheel or another CUDA build).
# DL3013 (pin versions): this installs the local project with its export extra, not a registry package.
# hadolint ignore=DL3013
RUN python -m pip install ".[export]" \
    && python -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1'), torch.__version__; assert torchvision.__version__.startswith('0.29.1'), torchvision.__version__" \
    && useradd --create-home --uid 1000 nas \
    && mkdir -p /shared \
    && chown nas:nas /shared

USER 1000:1000
EXPOSE 8089
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8089'), timeout=4)"]
CMD ["python", "-m", "autonn_nas", "serve"]
