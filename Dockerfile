# autonn-nas: the TANGO neck NAS stage (HTTP on port 8089; as TANGO's AutoNN on 8100 with NAS_PROFILE=tango).
#   docker build -t autonn-nas .
#   docker build --build-arg CUDA_TAG=cuda12.8 -t autonn-nas:cuda12.8 .    # hosts with an older NVIDIA driver
#   docker run --gpus all --init --ipc=host -v /path/to/shared:/shared -p 8089:8089 autonn-nas
# NVIDIA driver: the default base (CUDA 13.0) needs driver >= 580; a CUDA 12.x base (CUDA_TAG=cuda12.8, or
# another 12.x tag that pytorch/pytorch publishes for 2.14.1) runs on drivers >= 525 (CUDA minor-version
# compatibility; 570 for all of 12.8). `nvidia-smi` shows the host's driver.
# The server runs as root by default, as TANGO's project manager and AutoNN do: the PM creates the project
# folders and the stage must write into them. To run as another user: docker run --user "$(id -u):$(id -g)"
# (or `user:` in compose), with a shared folder that user can write.
ARG CUDA_TAG=cuda13.0
ARG BASE_IMAGE=pytorch/pytorch:2.14.1-${CUDA_TAG}-cudnn9-runtime
FROM ${BASE_IMAGE}

# PORT and CONTAINER_ID come from NAS_PROFILE (neck_nas: 8089 / neck_nas; tango: 8100 / autonn) unless set.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROJECT_MANAGER_URL=http://projectmanager:8085 \
    SHARED_DIR=/shared \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app
# Dependencies first, from pyproject.toml alone, so a change to the source does not reinstall them (layer
# cache). The base image brings CUDA and the pinned torch/torchvision; the build fails if pip would replace
# them (a CPU wheel or another CUDA build). The export extra (onnx/onnxruntime) is for bestmodel.onnx.
# constraints.txt: the versions the tests ran with (torch's CUDA runtime excepted: the base image's).
COPY pyproject.toml constraints.txt ./
# DL3013 (pin versions): the versions come from pyproject.toml and constraints.txt, read here.
# hadolint ignore=DL3013
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['export']))" > /tmp/requirements.txt \
    && python -m pip install -c constraints.txt -r /tmp/requirements.txt \
    && python -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1'), torch.__version__; assert torchvision.__version__.startswith('0.29.1'), torchvision.__version__" \
    && mkdir -p /shared

COPY README.md ./
COPY autonn_nas ./autonn_nas
COPY project_manager_stub ./project_manager_stub
COPY shared_volume ./shared_volume
# hadolint ignore=DL3013
RUN python -m pip install --no-deps .

EXPOSE 8089 8100
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; from autonn_nas.service.config import ServiceConfig; urllib.request.urlopen('http://127.0.0.1:%d/healthz' % ServiceConfig.from_env().port, timeout=4)"]
CMD ["python", "-m", "autonn_nas", "serve"]
