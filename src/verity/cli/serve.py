"""``verity serve [--host 127.0.0.1] [--port 8000] [--data-dir DIR] [--max-upload-mb N]``"""

from __future__ import annotations

import argparse
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the web page and HTTP API",
        description="Serve the verity web page and HTTP API (FastAPI + uvicorn). Analyses are stored "
        "in SQLite under the data folder. Set VERITY_API_TOKEN to require 'Authorization: Bearer "
        "<token>' on every route but /healthz (a browser asks for it as the password).",
        epilog="Exit codes: 0 stopped, 2 usage error, 4 the 'api' extra is not installed "
        "(pip install 'verity[api]').",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where analyses are kept (default $VERITY_DATA_DIR or ~/.local/share/verity)")
    p.add_argument("--max-upload-mb", type=float, default=None, metavar="N",
                   help="largest upload accepted, MB (default 100, or $VERITY_MAX_MB); larger ones get 413")
    p.add_argument("--max-mp", type=float, default=None, metavar="N",
                   help="largest image decoded, megapixels (default 100, or $VERITY_MAX_MP)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="analyses run at the same time (default: 2, or 1 on a 1-core machine)")
    p.add_argument("--detectors", metavar="A,B", help="run only these detectors (see `verity detectors`)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="URL",
                   help="allow this origin to call the API from a browser (repeatable; default: CORS off)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from verity.cli.main import EXIT_MISSING, EXIT_USAGE

    if not 0 <= args.port <= 65535:
        sys.stderr.write("verity serve: --port must be 0..65535\n")
        return EXIT_USAGE
    import math

    from verity.core.io import ENV_MAX_MB, ENV_MAX_MP, env_number

    # flags win over the environment, which wins over the defaults (as for `verity analyze`);
    # a malformed variable raises ConfigError: one line, exit 2
    if args.max_upload_mb is None:
        args.max_upload_mb = env_number(ENV_MAX_MB, 100.0)
    if args.max_mp is None:
        args.max_mp = env_number(ENV_MAX_MP, 100.0)
    if not all(math.isfinite(v) and v > 0 for v in (args.max_upload_mb, args.max_mp)):
        sys.stderr.write("verity serve: --max-upload-mb and --max-mp must be positive\n")
        return EXIT_USAGE
    if args.workers is not None and args.workers < 1:
        sys.stderr.write("verity serve: --workers must be at least 1\n")
        return EXIT_USAGE
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401  (python-multipart)
        import uvicorn
    except ImportError as e:
        sys.stderr.write(f"verity serve: {e.name} is not installed; pip install 'verity[api]'\n")
        return EXIT_MISSING

    from verity.api.app import create_app
    from verity.api.settings import Settings

    kw = {
        "max_upload_bytes": int(args.max_upload_mb * 1024 * 1024),
        "max_pixels": int(args.max_mp * 1e6),
        "cors_origins": tuple(args.cors_origin),
    }
    if args.data_dir:
        kw["data_dir"] = args.data_dir
    if args.workers:
        kw["workers"] = args.workers
    if args.detectors:
        names = [d.strip() for d in args.detectors.split(",") if d.strip()]
        from verity.core.registry import get_detector_class

        try:
            for n in names:
                get_detector_class(n)
        except KeyError as e:
            sys.stderr.write(f"verity serve: {e.args[0]}\n")
            return EXIT_USAGE
        kw["detectors"] = tuple(names)
    settings = Settings(**kw)
    try:
        app = create_app(settings)
    except OSError as e:
        sys.stderr.write(f"verity serve: cannot use data folder {settings.data_dir}: {e.strerror or e}\n")
        return EXIT_USAGE

    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            access_log=args.log_level == "debug", server_header=False,
                            h11_max_incomplete_event_size=64 * 1024)
    server = uvicorn.Server(config)

    announce = server.startup

    async def startup(sockets=None):  # print the URL once the port is bound (also when --port 0)
        await announce(sockets=sockets)
        if server.started:
            for s in server.servers:
                for sock in s.sockets:
                    host, port = sock.getsockname()[:2]
                    shown = f"[{host}]" if ":" in host else host
                    sys.stdout.write(f"verity serving on http://{shown}:{port}/  (data: {settings.data_dir}"
                                     f"{', token required' if settings.token else ''})\n")
                    sys.stdout.flush()
                    break
                break

    server.startup = startup
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.token:
        sys.stderr.write("verity serve: warning: listening beyond loopback without VERITY_API_TOKEN\n")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    server.run()
    return 0
