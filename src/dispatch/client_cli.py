"""Client commands against a running server: ``dispatch replay``, ``dispatch quote`` and ``dispatch stats``.

``register(subparsers)`` adds them to the ``dispatch`` parser; each sets ``func`` to its handler, which returns the
exit code: 0 on success, 1 when the server answered with an error, 2 on a usage error (a bad option, an unreadable
log, no server reachable). Errors are one line on stderr, never a traceback.

Connection options, shared by the three: ``--target HOST:PORT``; ``--token T`` or ``--token-file F`` (the bearer
token; also read from ``$DISPATCH_TOKEN`` when neither is given); ``--tls-ca F`` (the CA of the server's
certificate; default: the system's roots), ``--tls-cert F --tls-key F`` (mutual TLS); ``--insecure`` (plaintext,
for a local server started with ``--insecure``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dispatch.argtypes import fraction, latitude, longitude, non_negative_float, positive_float, positive_int
from dispatch.client import DispatchClient, DispatchError, Quote
from dispatch.sim.log import LogError


def _add_connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", required=True, metavar="HOST:PORT", help="the server's address")
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token", help="bearer token (default: $DISPATCH_TOKEN)")
    tok.add_argument("--token-file", metavar="F", help="file holding the bearer token")
    p.add_argument("--tls-ca", metavar="F", help="PEM file of the CA that signed the server's certificate")
    p.add_argument("--tls-cert", metavar="F", help="client certificate (PEM) for mutual TLS")
    p.add_argument("--tls-key", metavar="F", help="client private key (PEM) for mutual TLS")
    p.add_argument("--insecure", action="store_true", help="plaintext channel (a local server run with --insecure)")
    p.add_argument("--timeout", type=positive_float, default=10.0, help="seconds per call (default 10)")


class UsageError(ValueError):
    """A bad command-line value (exit code 2)."""


def _connector(args: argparse.Namespace, extra_options: tuple[tuple[str, Any], ...] = ()) -> Callable[[], Any]:
    """A function opening a new DispatchClient from the connection flags. Raises UsageError for bad flags."""
    token = args.token
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            raise UsageError(f"--token-file: cannot read {args.token_file!r} ({exc.strerror})") from None
        if not token:
            raise UsageError(f"--token-file: {args.token_file!r} is empty")
    if token is None:
        token = os.environ.get("DISPATCH_TOKEN") or None
    if args.insecure and (args.tls_ca or args.tls_cert or args.tls_key):
        raise UsageError("--insecure opens a plaintext channel: drop --tls-ca/--tls-cert/--tls-key")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("mutual TLS needs both --tls-cert and --tls-key")
    for flag, path in (("--tls-ca", args.tls_ca), ("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path and not os.path.isfile(path):
            raise UsageError(f"{flag}: no such file {path!r}")

    # a partial, not a closure: the replay's order process gets it pickled
    connect = functools.partial(
        DispatchClient,
        args.target,
        token=token,
        root_certificates=args.tls_ca,
        certificate_chain=args.tls_cert,
        private_key=args.tls_key,
        insecure=args.insecure,
        timeout=args.timeout,
        options=extra_options,
    )
    try:
        connect().close()  # check the options once, here, where a ValueError is still a usage error
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return connect


def _fail(exc: BaseException, code: int) -> int:
    print(f"dispatch: error: {exc}", file=sys.stderr)
    return code


# --------------------------------------------------------------------------------------------------------------
# dispatch replay
# --------------------------------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from dispatch.replay import ReplayError, ReplayOptions, parse_hhmm, run_replay

    try:
        opts = ReplayOptions(
            speed=args.speed,
            duration_s=args.duration,
            start_s=parse_hhmm(args.start) if args.start else None,
            ping_s=args.ping_s,
            reject_rate=args.reject_rate,
            seed=args.seed,
            order_streams=args.order_streams,
            batch_orders=args.batch_orders,
            linger_ms=args.linger_ms,
            rider_streams=args.rider_streams,
            batch_events=args.batch_events,
            flush_s=args.flush_s,
            drain_s=args.drain,
            id_prefix=args.id_prefix,
            keep_online=args.keep_online,
            verify=args.verify,
        )
        # One TCP connection per stream, so that streams do not queue behind each other on one connection.
        connect = _connector(args, (("grpc.use_local_subchannel_pool", 1),))
    except (ReplayError, UsageError) as exc:
        return _fail(exc, 2)

    progress = None
    if not args.json:

        def progress(snap: dict[str, Any]) -> None:
            print(
                f"[{snap['t_s']:7.1f} s] orders sent {snap['orders_sent']:,} acked {snap['orders_acked']:,} "
                f"assigned {snap['orders_assigned']:,}; rider events sent {snap['rider_events_sent']:,}; "
                f"errors {snap['errors']:,}",
                file=sys.stderr,
                flush=True,
            )

    try:
        result = run_replay(args.log_dir, connect, opts, progress).to_dict()
    except (ReplayError, LogError, UsageError) as exc:
        return _fail(exc, 2)
    except DispatchError as exc:
        return _fail(exc, 1)
    except KeyboardInterrupt:
        return _fail(RuntimeError("interrupted"), 130)
    if args.json:
        print(json.dumps(result))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"dispatch replay {args.log_dir} -> {args.target}: {opts.speed:g}x for {opts.duration_s:g} s")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in result.items():
        t.add_row(k, json.dumps(v) if isinstance(v, dict | list) else str(v))
    Console().print(t)
    return 0


# --------------------------------------------------------------------------------------------------------------
# dispatch quote, dispatch stats
# --------------------------------------------------------------------------------------------------------------


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _quote_dict(q: Quote) -> dict[str, Any]:
    return {
        "quoted_at": q.quoted_at,
        "decline_reason": q.decline_reason or None,
        "options": [
            {
                "site_id": o.site_id,
                "promised_by": o.promised_by,
                "estimated_delivery": o.estimated_delivery,
                "on_time_probability": o.on_time_probability,
                "tier_s": o.tier_s,
                "deferred": o.deferred,
            }
            for o in q.options
        ],
    }


def cmd_quote(args: argparse.Namespace) -> int:
    try:
        connect = _connector(args)
    except UsageError as exc:
        return _fail(exc, 2)
    try:
        with connect() as c:
            q = c.quote(args.lat, args.lng, size=args.size, site_id=args.site or "")
    except DispatchError as exc:
        return _fail(exc, 1)
    if args.json:
        print(json.dumps(_quote_dict(q)))
        return 0
    if not q.options:
        print(f"declined: {q.decline_reason or 'no options'} (quoted at {_iso(q.quoted_at)})")
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"quote for size {args.size} to ({args.lat:.5f}, {args.lng:.5f}) at {_iso(q.quoted_at)}")
    for col in ("site", "promised by", "in (min)", "estimated delivery", "on-time p", "tier (min)", "deferred"):
        t.add_column(col, justify="left" if col == "site" else "right")
    for o in q.options:
        t.add_row(
            o.site_id,
            _iso(o.promised_by),
            f"{(o.promised_by - q.quoted_at) / 60:.0f}",
            _iso(o.estimated_delivery),
            f"{o.on_time_probability:.3f}",
            f"{o.tier_s / 60:g}",
            "yes" if o.deferred else "",
        )
    Console().print(t)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    try:
        connect = _connector(args)
    except UsageError as exc:
        return _fail(exc, 2)
    try:
        with connect() as c:
            s = c.get_stats()
    except DispatchError as exc:
        return _fail(exc, 1)
    d = s.to_dict()
    if args.json:
        print(json.dumps(d))
        return 0
    d["at"] = _iso(s.at)
    d["last_tick_at"] = _iso(s.last_tick_at) if s.last_tick_at is not None else None
    d["site_ids"] = f"{len(s.site_ids)} sites"
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"dispatch stats {args.target}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in d.items():
        t.add_row(k, json.dumps(v) if isinstance(v, dict) else str(v))
    Console().print(t)
    return 0


def register(sub: Any) -> None:
    """Add ``replay``, ``quote`` and ``stats`` to the ``dispatch`` subparsers."""
    rp = sub.add_parser(
        "replay",
        help="stream an order log and its riders' events into a running server, measure latencies and rates",
        description="Replay LOG_DIR into the server at --target at --speed simulated seconds per wall second for "
        "--duration wall seconds; print latencies (ack, order-to-assignment), rates and errors.",
    )
    rp.add_argument("log_dir", metavar="LOG_DIR", help="an order log directory (dispatch generate ... --out DIR)")
    _add_connection(rp)
    rp.add_argument("--speed", type=positive_float, required=True, help="simulated seconds per wall second")
    rp.add_argument("--duration", type=positive_float, default=60.0, help="wall seconds to replay (default 60)")
    rp.add_argument("--start", metavar="HH:MM", help="local time of the log's day to start at (default: 1st order)")
    rp.add_argument(
        "--ping-s", type=positive_float, default=10.0, help="simulated seconds between location pings (default 10)"
    )
    rp.add_argument("--reject-rate", type=fraction, default=0.0, help="share of assignments riders reject (0)")
    rp.add_argument("--seed", type=int, default=0, help="seed of the rejections and ping phases (default 0)")
    rp.add_argument("--order-streams", type=positive_int, default=4, help="concurrent SubmitOrders streams (4)")
    rp.add_argument(
        "--batch-orders",
        type=positive_int,
        default=64,
        help="most orders per SubmitOrders message: what queued while a stream wrote goes in one message, without "
        "waiting for more (default 64; 1: a message per order)",
    )
    rp.add_argument(
        "--linger-ms",
        type=non_negative_float,
        default=2.0,
        help="the order scheduler wakes at most once per this many ms, so that orders due meanwhile share a "
        "message (default 2; 0: at each order's time)",
    )
    rp.add_argument("--rider-streams", type=positive_int, default=2, help="concurrent ReportRiderEvents streams (2)")
    rp.add_argument("--batch-events", type=positive_int, default=1000, help="most rider events per message (1000)")
    rp.add_argument("--flush-s", type=positive_float, default=1.0, help="seconds a rider stream stays open (1)")
    rp.add_argument(
        "--drain",
        type=non_negative_float,
        default=None,
        help="seconds to wait after the window for acks and assignments (default: 3 ticks + batching hold + 5)",
    )
    rp.add_argument("--id-prefix", help="prefix of order and rider ids (default: a tag of the start time)")
    rp.add_argument("--keep-online", action="store_true", help="leave the riders online at the end")
    rp.add_argument(
        "--verify", action="store_true", help="at the end, GetOrder every acknowledged order; count the missing ones"
    )
    rp.add_argument("--json", action="store_true", help="print one JSON object (no progress on stderr)")
    rp.set_defaults(func=cmd_replay)

    qp = sub.add_parser("quote", help="ask a running server for promise options to an address")
    _add_connection(qp)
    qp.add_argument("--lat", type=latitude, required=True, help="drop-off latitude, degrees")
    qp.add_argument("--lng", type=longitude, required=True, help="drop-off longitude, degrees")
    qp.add_argument("--size", type=positive_int, default=1, help="capacity units (default 1)")
    qp.add_argument("--site", help="quote this site only")
    qp.add_argument("--json", action="store_true", help="print one JSON object")
    qp.set_defaults(func=cmd_quote)

    sp = sub.add_parser("stats", help="counters and gauges of a running server")
    _add_connection(sp)
    sp.add_argument("--json", action="store_true", help="print one JSON object")
    sp.set_defaults(func=cmd_stats)
