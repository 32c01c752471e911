"""`autonn-nas serve`: the pipeline stage's HTTP server (Flask app on the waitress WSGI server).

Configured by environment variables (HOST, PORT, CONTAINER_ID, PROJECT_MANAGER_URL, SHARED_DIR, ...; see
autonn_nas/service/config.py); --host/--port override the listening address.
"""
from __future__ import annotations

import argparse
import dataclasses
import os

from autonn_nas.service.config import ServiceConfig
from autonn_nas.utils.log import get_logger


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=os.environ.get("HOST") or "0.0.0.0", help="address to listen on (default: $HOST, else 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $PORT, else 8089)")
    parser.add_argument("--threads", type=int, default=8, help="request threads (default 8)")


def run(args: argparse.Namespace) -> int:
    import waitress

    from autonn_nas.service.app import create_app

    config = ServiceConfig.from_env()
    if args.port is not None:
        config = dataclasses.replace(config, port=args.port)
    config.shared_dir.mkdir(parents=True, exist_ok=True)
    log = get_logger("service")
    log.info("neck NAS stage on %s:%d; shared volume %s; project manager %s; container id %s; status updates %s",
             args.host, config.port, config.shared_dir, config.pm_url, config.container_id, "on" if config.status_updates else "off")
    waitress.serve(create_app(config), host=args.host, port=config.port, threads=args.threads, ident="autonn-nas")
    return 0
