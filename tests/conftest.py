"""Fixtures that several test modules share (pytest finds them here); the helpers they are built from live in the
*_support.py modules beside this file (test_data_support, test_export_support, test_service_support)."""
from __future__ import annotations

import os

# One torch thread in the test process and in every process a test starts, unless the caller says otherwise: CI's
# 2-core machine is busy, and with torch's default of a thread per core every operation then waits at its barrier
# for a sibling thread the kernel has descheduled. Measured on this machine beside one other busy process: a
# training step of the tiny test model took 12.8 s with 2 threads and 0.33 s with 1.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402 (after the thread count: torch reads it when first imported)

from test_export_support import EXPORT_IMG, make_bestmodel
from test_service_support import Stack


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    """A small trained bestmodel.pt at EXPORT_IMG px, as a search leaves it, for the export tests (read only)."""
    _yaml, path = make_bestmodel(tmp_path_factory.mktemp("export"), img_size=EXPORT_IMG)
    return path


@pytest.fixture(scope="session")
def model(weights):
    """The PyTorch model of `weights`, in eval mode (read only)."""
    from autonn_nas.train.checkpoint import load_checkpoint, model_from_checkpoint

    return model_from_checkpoint(load_checkpoint(weights))


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory):
    """One stage server and PM stub for a whole module; its tests use their own project ids."""
    stack = Stack(tmp_path_factory.mktemp("stack"))
    try:
        yield stack
    finally:
        stack.close()
