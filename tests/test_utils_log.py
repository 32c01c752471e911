"""utils/log.py: the library's NullHandler convention, the CLI's configuration, the package logger's file handler
and the scoped quieter level (distributed ranks > 0)."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

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


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)


def test_the_library_installs_no_handler_and_a_python_user_routes_its_records(tmp_path):
    done = _fresh_python(
        "import logging, json\n"
        "import autonn_nas\n"
        "from autonn_nas.utils.log import get_logger, log_to_file\n"
        "package = logging.getLogger('autonn_nas')\n"
        "handlers = [type(h).__name__ for h in package.handlers]\n"
        "seen = []\n"
        "class Mine(logging.Handler):\n"
        "    def emit(self, record): seen.append(record.getMessage())\n"
        "logging.getLogger().addHandler(Mine())\n"  # the user's own routing, at the root
        "get_logger('data').warning('routed where the user wants')\n"
        f"with log_to_file({str(tmp_path / 'run.log')!r}):\n"
        "    get_logger('search').info('kept in the run log')\n"
        "print(json.dumps({'handlers': handlers, 'propagate': package.propagate, 'seen': seen}))\n")
    result = json.loads(done.stdout)
    assert result["handlers"] == ["NullHandler"] and result["propagate"] is True
    assert "routed where the user wants" in result["seen"]
    assert done.stderr == ""  # nothing printed on its own: the library does not configure logging
    assert "kept in the run log" in (tmp_path / "run.log").read_text()  # a run's log file gets INFO anyway


def test_the_cli_logging_prints_each_record_once_even_after_basicconfig():
    done = _fresh_python(
        "import logging\n"
        "from autonn_nas.utils.log import configure_logging, get_logger\n"
        "configure_logging()\n"
        "logging.basicConfig()\n"  # what waitress.serve does
        "configure_logging()\n"
        "get_logger('service').info('stage on port 8089')\n")
    assert done.stderr.count("stage on port 8089") == 1 and "INFO autonn_nas.service: stage on port 8089" in done.stderr
