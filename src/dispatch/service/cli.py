"""``dispatch serve``: run the gRPC dispatch service (see dispatch.service.config for the TOML file).

Exit codes: 0 after a graceful stop (SIGTERM, SIGINT), 2 for a bad configuration or flag (one line naming the key).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from dispatch.argtypes import port, positive_float
from dispatch.policy import ParamsError
from dispatch.service.config import ConfigError, ServiceConfig, parse_config

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _STD:
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger("dispatch")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def build_config(args: argparse.Namespace) -> ServiceConfig:
    """The file's configuration with the flags applied on top (flags win); ConfigError on any problem."""
    if not args.config:
        raise ConfigError("--config", "a configuration file naming the sites is required")
    import tomllib

    cfg_path = Path(args.config)
    try:
        data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("", f"{args.config}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{args.config}: not valid TOML: {exc}") from None
    # Flags that decide what is valid (plain text only on loopback) go in before validation.
    if args.insecure:
        data["insecure"] = True
    if args.listen:
        data["listen"] = args.listen
    base = parse_config(data, cfg_path.parent)
    changes: dict[str, Any] = {}
    if args.journal:
        changes["journal"] = str(Path(args.journal).resolve())
    if args.metrics_port is not None:
        changes["metrics_port"] = args.metrics_port
    if args.log_level:
        changes["log_level"] = args.log_level
    if args.tick_s is not None:
        try:
            changes["dispatch"] = base.dispatch.with_updates(tick_s=args.tick_s)
        except ParamsError as exc:
            raise ConfigError("--tick-s", str(exc)) from None
    return replace(base, **changes)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        cfg = build_config(args)
    except ConfigError as exc:
        print(f"dispatch serve: error: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg.log_level, cfg.log_format)
    from dispatch.service.server import serve_forever

    try:
        return serve_forever(cfg)
    except OSError as exc:
        print(f"dispatch serve: error: {exc}", file=sys.stderr)
        return 2


def register(sub: Any) -> None:
    """Add ``serve`` to the ``dispatch`` command's subparsers."""
    p = sub.add_parser("serve", help="run the gRPC dispatch service")
    p.add_argument("--config", help="TOML configuration (sites, TLS, tokens, limits, dispatch parameters)")
    p.add_argument("--listen", help="HOST:PORT to listen on (port 0: any free port)")
    p.add_argument("--journal", help="the SQLite journal file")
    p.add_argument("--insecure", action="store_true", help="plain text, auth optional; loopback addresses only")
    p.add_argument("--metrics-port", type=port, default=None, help="serve Prometheus metrics on this HTTP port")
    p.add_argument("--tick-s", type=positive_float, default=None, help="seconds between dispatch ticks")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=None)
    p.set_defaults(func=cmd_serve)
