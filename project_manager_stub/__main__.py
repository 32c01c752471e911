"""python -m project_manager_stub [serve] --port 8085 --shared DIR [--record FILE] [--stage-url URL] [--tango]
python -m project_manager_stub create-project --shared DIR --user-id U --project-id P"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from project_manager_stub.projects import DEFAULT_DEMO_VOLUME, DEFAULT_TEMPLATE, create_project
from project_manager_stub.server import StubServer


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        argv.insert(0, "serve")
    parser = argparse.ArgumentParser(prog="python -m project_manager_stub", description="TANGO project-manager stub")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the stub server")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: loopback only; 0.0.0.0 in a container that others must reach)")
    serve.add_argument("--port", type=int, default=8085)
    serve.add_argument("--shared", type=Path, default=Path("/shared"), help="the shared volume root")
    serve.add_argument("--stage-url", default="http://neck_nas:8089", help="the stage's base URL, for /stage/<endpoint>")
    serve.add_argument("--record", type=Path, default=None, help="also append every received call to this JSON-lines file")
    serve.add_argument("--tango", action="store_true",
                       help="behave as TANGO's current PM: known container ids only, 5 s timeout, epoch-summary fields checked")
    serve.add_argument("--demo-volume", type=Path, default=DEFAULT_DEMO_VOLUME, help="where project templates come from")
    create = sub.add_parser("create-project", help="copy a template project (and its dataset) onto the shared volume")
    create.add_argument("--shared", type=Path, required=True)
    create.add_argument("--user-id", required=True)
    create.add_argument("--project-id", required=True)
    create.add_argument("--template", default=DEFAULT_TEMPLATE)
    create.add_argument("--demo-volume", type=Path, default=DEFAULT_DEMO_VOLUME)
    args = parser.parse_args(argv)

    if args.command == "create-project":
        print(create_project(args.shared, args.user_id, args.project_id, args.demo_volume, args.template))
        return 0
    server = StubServer((args.host, args.port), args.shared, args.stage_url, args.demo_volume, args.record, tango=args.tango)
    print(f"[pm-stub] listening on {args.host}:{server.server_address[1]}, shared {args.shared}, stage {args.stage_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
