"""The stage's HTTP endpoints (contract.md): plain one-word replies for the PM, JSON /status, /healthz."""
from __future__ import annotations

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from autonn_nas.service import state as st
from autonn_nas.service.config import ServiceConfig
from autonn_nas.service.jobs import JobManager
from autonn_nas.service.paths import ProjectPaths
from autonn_nas.service.refusals import Refused
from autonn_nas.utils.log import get_logger

log = get_logger("service.app")


def _word(word: str, code: int = 200) -> Response:
    return Response(word, status=code, mimetype="text/plain")


def create_app(config: ServiceConfig | None = None, manager: JobManager | None = None, background: bool = True) -> Flask:
    config = config or ServiceConfig.from_env()
    manager = manager or JobManager(config)
    app = Flask("autonn_nas.service")
    app.config["NAS"] = config
    if background:
        # Jobs that died unwatched (with a previous server) are found and reported without waiting for a
        # request, and reports the PM has not taken are sent again until it does.
        manager.start_background()

    def project() -> ProjectPaths:
        """The request's project; raises ValueError (-> `failed`, 400) for ids that are not plain names."""
        user_id = request.args.get("user_id") or request.args.get("userid")
        return manager.paths(user_id, request.args.get("project_id"))

    @app.before_request
    def only_get():
        # Flask answers HEAD (as GET, running the view) and OPTIONS on every GET route by itself: here a HEAD
        # /start would start a job. Only GET does anything; an unknown path stays a 404.
        if request.method != "GET" and (request.routing_exception is None or isinstance(request.routing_exception, MethodNotAllowed)):
            raise MethodNotAllowed(valid_methods=["GET"])

    @app.errorhandler(ValueError)
    def invalid(exc: ValueError):
        return refused(Refused(str(exc), 400))

    @app.errorhandler(Refused)
    def refused(exc: Refused):
        log.warning("%s %s/%s refused: %s", request.path, request.args.get("user_id") or request.args.get("userid"),
                    request.args.get("project_id"), exc.reason)
        if request.path == "/status":
            return jsonify({"status": st.FAILED, "error": exc.reason}), exc.code
        return _word(st.FAILED, exc.code)

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
        manager.start(project())
        return _word(st.STARTED)

    @app.get("/resume")
    def resume():
        manager.start(project(), resume=True)
        return _word(st.STARTED)

    @app.get("/stop")
    def stop():
        return _word(manager.stop(project()))

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
