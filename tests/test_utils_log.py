"""utils/log.py: the package logger's file handler and the scoped quieter level (distributed ranks > 0)."""
from __future__ import annotations

import logging

from autonn_nas.utils.log import get_logger, log_to_file, quieter


def test_quieter_drops_info_inside_the_block_and_restores_the_level(tmp_path):
    log, before = get_logger("test"), get_logger().level
    with log_to_file(tmp_path / "log.txt"):
        with quieter(logging.WARNING):
            log.info("rank 1 info")
            log.warning("rank 1 warning")
        log.info("after the block")
    text = (tmp_path / "log.txt").read_text()
    assert "rank 1 info" not in text and "rank 1 warning" in text and "after the block" in text
    assert get_logger().level == before
