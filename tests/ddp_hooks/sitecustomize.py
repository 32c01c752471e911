"""Imported at start-up by each Python process a DDP test launches with this folder on PYTHONPATH (torchrun, its
ranks, the autonn-nas console script): installs rank_digests' hooks when the test asked for them."""
import os

if os.environ.get("AUTONN_NAS_TEST_RANK_DIGESTS"):
    import rank_digests

    rank_digests.install(os.environ["AUTONN_NAS_TEST_RANK_DIGESTS"])
