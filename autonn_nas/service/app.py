"""The stage's HTTP endpoints (contract.md): plain one-word replies for the PM, JSON /status, /healthz."""
from __future__ import annotations

import threading

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from autonn_nas.service import state as st
from autonn_nas.service.config import ServiceConfig
from autonn_nas.service.jobs import JobManager
from autonn_nas.service.paths import ProjectPaths
from autonn_nas.utils.log import get_logger

log = get_logger("service.app")


def _word(word: str, code: int = 200) -> Response:
    return Response(word, status=code, mimetype="text/plain")


def create_app(config: ServiceConfig | None = None, manager: JobManager | None = None, scan_on_start: bool = True) -> Flask:
    config = config or ServiceConfig.from_env()
    manager = manager or JobManager(config)
    app = Flask("autonn_nas.service")
    app.config["NAS"] = config
    if scan_on_start:
        # Jobs that died with a previous server are found and reported without waiting for a request, and
        # reports the PM has not taken are sent again until it does.
        threading.Thread(target=manager.reconcile_all, daemon=True, name="startup-scan").start()
        manager.courier.start()

    def project() -> ProjectPaths:
        """The request's project; raises ValueError (-> `failed`, 400) for ids that are not plain names."""
        user_id = request.args.get("user_id") or request.args.get("userid")
        return manager.paths(user_id, request.args.get("project_id"))

    @app.errorhandler(ValueError)
    def refuse(exc: ValueError):
        log.warning("%s refused: %s", request.path, exc)
        if request.path == "/status":
            return jsonify({"status": st.FAILED, "error": str(exc)}), 400
        return _word(st.FAILED, 400)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # an unknown route (404) or a wrong method (405) is the caller's mistake, not a server failure: its own
        # code, the usual short answer, and its headers (405's Allow), without a traceback in the log
        log.warning("%s %s: %s %s", request.method, request.path, exc.code, exc.name)
        if request.path == "/status":
            response = jsonify({"status": st.FAILED, "error": f"{exc.code} {exc.name}"})
            response.status_code = exc.code or 500
        else:
            response = _word(st.FAILED, exc.code or 500)
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def internal(exc: Exception):
        log.exception("%s failed", request.path)
        if request.path == "/status":
            return jsonify({"status": st.FAILED, "error": f"internal error: {exc}"}), 500
        return _word(st.FAILED, 500)

    @app.get("/start")
    def start():
        return _word(*manager.start(project()))

    @app.get("/resume")
    def resume():
        return _word(*manager.start(project(), resume=True))

    @app.get("/stop")
    def stop():
        return _word(*manager.stop(project()))

    @app.get("/status_request")
    def status_request():
        return _word(manager.status_word(project()))

    @app.get("/status")
    def status():
        return jsonify(manager.status_detail(project()))

    @app.get("/healthz")
    def healthz():
        return _word("ok")

    return app
