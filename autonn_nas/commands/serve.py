"""`autonn-nas serve`: the pipeline stage's HTTP server (Flask app on the waitress WSGI server).

Configured by environment variables (HOST, PORT, CONTAINER_ID, PROJECT_MANAGER_URL, SHARED_DIR, ...; see
autonn_nas/service/config.py); --host/--port override the listening address.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import socket

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
    check_port_free(args.host, config.port)  # before the app starts: it takes over the volume's jobs at start-up
    config.shared_dir.mkdir(parents=True, exist_ok=True)
    log = get_logger("service")
    log.info("neck NAS stage on %s:%d; shared volume %s; project manager %s; container id %s; status updates %s",
             args.host, config.port, config.shared_dir, config.pm_url, config.container_id, "on" if config.status_updates else "off")
    try:
        waitress.serve(create_app(config), host=args.host, port=config.port, threads=args.threads, ident="autonn-nas")
    except OSError as error:  # taken between the check and the bind
        raise ValueError(_bind_problem(args.host, config.port, error)) from None
    return 0


def check_port_free(host: str, port: int) -> None:
    """A ValueError saying what to do when nothing can listen on host:port (in use, not allowed, no such address)."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress binds: a port in TIME_WAIT is free
            probe.bind(address)
    except OSError as error:
        raise ValueError(_bind_problem(host, port, error)) from None


def _bind_problem(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is in use (another autonn-nas serve, or another server): stop it, or listen on "
                "another port with --port N (or PORT=N)")
    if error.errno == errno.EACCES:
        return f"not allowed to listen on port {port}: ports below 1024 need privileges; use --port N with N >= 1024"
    return f"cannot listen on {host}:{port}: {error.strerror or error}; check --host and --port"
