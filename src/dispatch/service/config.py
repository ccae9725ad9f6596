"""The configuration of ``dispatch serve``: a TOML file and command-line flags, validated with errors naming the key.

Every key is optional except where a site source is needed. The layout (top level, then tables)::

    listen = "127.0.0.1:50051"      # HOST:PORT (port 0 = any free port)
    journal = "dispatch.journal"    # the SQLite journal (WAL mode); relative paths are relative to the file
    journal_sync = "full"           # "full" (fsync at every group commit) or "normal" (survives a process kill)
    insecure = false                # plain text, auth optional; only on a loopback address
    metrics_port = 9108             # Prometheus metrics over HTTP (absent: no metrics endpoint; 0 = any port)
    metrics_host = "127.0.0.1"
    policy = "kernel"               # the dispatch policy (dispatch.policy.POLICIES)
    policy_process = true           # run the policy in a worker process (Numba holds the GIL while it runs)
    policy_nice = 0                 # the worker's niceness (0-19; higher: requests win a saturated CPU over it)
    grpc_server = "threads"         # "threads" (grpc's thread pool) or "aio" (asyncio, dispatch.service.aio)
    tick_pause_ms = 1.0             # the tick's work in the server pauses this long after every 2 ms (0: no pauses)
    tick_slots = 15                 # each tick_s is cut into this many slots, one group of neighbouring sites each
    utc_offset_h = 8                # local time minus UTC, for the travel model's time of day
    log_level = "info"              # debug, info, warning, error
    log_format = "json"             # "json" (one object a line) or "text"

    [sites]                         # exactly one of scenario, log_dir, list
    scenario = "simulations/demo.toml"
    log_dir = "logs/demo"           # an order log directory (its sites.parquet and meta.json)
    list = [{ id = "s1", lat = 31.23, lng = 121.47, service_s = 120, zone_m = 3000 }]
    owned = "all"                   # or a list of site ids this instance dispatches for
    group_link_m = 30000            # sites closer than this share a planar frame (riders may serve several)

    [tls]
    cert = "server.pem"             # required unless insecure
    key = "server.key"
    client_ca = "ca.pem"            # optional: mutual TLS, clients must present a certificate it signed

    [auth]
    tokens = [{ token = "...", roles = ["orders"] }, { token_env = "OPS_TOKEN", roles = ["ops"] }]

    [limits]
    max_pending_orders = 200000     # more undispatched orders -> RESOURCE_EXHAUSTED
    journal_queue = 100000          # records waiting for the journal writer -> RESOURCE_EXHAUSTED beyond
    max_concurrent_rpcs = 512       # grpc's bound on RPCs in progress (beyond: RESOURCE_EXHAUSTED)
    workers = 128                   # server threads (each open stream holds one)
    max_message_bytes = 1048576     # a larger request message -> INVALID_ARGUMENT
    max_events_per_message = 10000  # rider events in one ReportRiderEvents message
    max_orders_per_message = 1000   # orders in one SubmitOrders batch (beyond: each of them refused)
    watch_buffer = 100000           # events queued for one watcher before it is cut off (RESOURCE_EXHAUSTED)
    max_dropoff_m = 100000          # a drop-off farther than this from its site is INVALID_ARGUMENT

    [dispatch]                      # any field of dispatch.policy.DispatchParams (tick_s, hold_s, ...)
    [travel]                        # dispatch.sim.log.TravelModel: kind, speed_mps, detour

Flags override the file: ``--listen``, ``--journal``, ``--insecure``, ``--metrics-port``, ``--tick-s``,
``--log-level``.
"""

from __future__ import annotations

import ipaddress
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dispatch.policy import POLICIES, DispatchParams, ParamsError
from dispatch.sim.log import TravelModel

ROLES = ("orders", "riders", "ops")
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A configuration value is bad; ``field`` is its dotted path (``limits.workers``, ``sites.list[2].lat``)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}" if field_name else message)
        self.field = field_name


@dataclass(frozen=True)
class SiteDef:
    """A site as the service knows it: WGS84 position, pickup service seconds, zone radius in metres."""

    id: str
    lat: float
    lng: float
    service_s: float = 120.0
    zone_m: float = 3000.0


@dataclass(frozen=True)
class TokenSpec:
    """A bearer token and the roles it grants."""

    token: str
    roles: frozenset[str]


@dataclass(frozen=True)
class Limits:
    """Bounds on queues and messages (see the module docstring)."""

    max_pending_orders: int = 200_000
    journal_queue: int = 100_000
    max_concurrent_rpcs: int = 512
    workers: int = 128
    max_message_bytes: int = 1 << 20
    max_events_per_message: int = 10_000
    max_orders_per_message: int = 1_000
    watch_buffer: int = 100_000
    max_dropoff_m: float = 100_000.0


@dataclass(frozen=True)
class ServiceConfig:
    """A validated configuration. ``owned`` None means every site."""

    sites: tuple[SiteDef, ...]
    listen: str = "127.0.0.1:50051"
    journal: str = "dispatch.journal"
    journal_sync: str = "full"
    insecure: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    tokens: tuple[TokenSpec, ...] = ()
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    owned: frozenset[str] | None = None
    group_link_m: float = 30_000.0
    policy: str = "kernel"
    policy_process: bool = True
    policy_nice: int = 0
    tick_pause_ms: float = 1.0
    tick_slots: int = 15
    grpc_server: str = "threads"
    utc_offset_s: float = 8 * 3600.0
    travel: TravelModel = field(default_factory=TravelModel)
    dispatch: DispatchParams = field(default_factory=DispatchParams)
    limits: Limits = field(default_factory=Limits)
    log_level: str = "info"
    log_format: str = "json"

    def __post_init__(self) -> None:
        host, port = split_listen(self.listen)
        if self.journal_sync not in ("full", "normal"):
            raise ConfigError("journal_sync", f'must be "full" or "normal", got {self.journal_sync!r}')
        if self.insecure:
            if not is_loopback(host):
                raise ConfigError(
                    "insecure",
                    f"plain text is only allowed on a loopback address (127.0.0.1, ::1, localhost), not {host!r}",
                )
        else:
            if not self.tls_cert or not self.tls_key:
                raise ConfigError("tls.cert", "TLS needs a certificate and a key (tls.cert, tls.key) unless --insecure")
            if not self.tokens:
                raise ConfigError("auth.tokens", "at least one token is required unless --insecure")
        if not self.sites:
            raise ConfigError("sites", "no sites: give sites.scenario, sites.log_dir or sites.list")
        ids = [s.id for s in self.sites]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise ConfigError("sites", f"duplicate site ids {dup[:5]}")
        if self.owned is not None:
            unknown = sorted(self.owned - set(ids))
            if unknown:
                raise ConfigError("sites.owned", f"unknown site ids {unknown[:5]}")
            if not self.owned:
                raise ConfigError("sites.owned", 'an empty list owns nothing; use "all" or name sites')
        if self.policy not in POLICIES:
            raise ConfigError("policy", f"must be one of {list(POLICIES)}, got {self.policy!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError("log_level", f"must be one of {list(LOG_LEVELS)}, got {self.log_level!r}")
        if self.log_format not in ("json", "text"):
            raise ConfigError("log_format", f'must be "json" or "text", got {self.log_format!r}')
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError("metrics_port", f"must be in [0, 65535], got {self.metrics_port}")
        if not 0 <= self.policy_nice <= 19:
            raise ConfigError("policy_nice", f"must be in [0, 19], got {self.policy_nice}")
        if self.grpc_server not in ("threads", "aio"):
            raise ConfigError("grpc_server", f'must be "threads" or "aio", got {self.grpc_server!r}')
        if not (math.isfinite(self.tick_pause_ms) and 0.0 <= self.tick_pause_ms <= 100.0):
            raise ConfigError("tick_pause_ms", f"must be a number in [0, 100], got {self.tick_pause_ms}")
        if not 1 <= self.tick_slots <= 3600:
            raise ConfigError("tick_slots", f"must be in [1, 3600], got {self.tick_slots}")
        if not (math.isfinite(self.group_link_m) and self.group_link_m > 0):
            raise ConfigError("sites.group_link_m", f"must be a finite number > 0, got {self.group_link_m}")
        del port

    @property
    def owned_ids(self) -> frozenset[str]:
        return frozenset(s.id for s in self.sites) if self.owned is None else self.owned


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 hosts in brackets) -> (host, port); ConfigError naming ``listen`` otherwise."""
    host, sep, port_s = listen.rpartition(":")
    if not sep or not host or not port_s.isdigit():
        raise ConfigError("listen", f"expected HOST:PORT, got {listen!r}")
    port = int(port_s)
    if port > 65535:
        raise ConfigError("listen", f"port must be in [0, 65535], got {port}")
    return host.strip("[]"), port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------------------


def _table(v: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise ConfigError(path, f"must be a table, got {v!r}")
    return v


def _known(t: Mapping[str, Any], path: str, known: set[str]) -> None:
    for k in t:
        if k not in known:
            where = f"{path}.{k}" if path else k
            raise ConfigError(where, f"unknown key (known: {', '.join(sorted(known))})")


def _int(v: Any, path: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(path, f"must be an integer >= {lo}, got {v!r}")
    return v


def _num(v: Any, path: str, lo: float, lo_open: bool = False) -> float:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v < lo or (lo_open and v == lo):
        raise ConfigError(path, f"must be a finite number {'>' if lo_open else '>='} {lo}, got {v!r}")
    return float(v)


def _str(v: Any, path: str) -> str:
    if not isinstance(v, str) or not v:
        raise ConfigError(path, f"must be a non-empty string, got {v!r}")
    return v


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(path, f"must be true or false, got {v!r}")
    return v


def _path(v: Any, key: str, base: Path) -> str:
    p = Path(_str(v, key))
    return str(p if p.is_absolute() else base / p)


def _sites_from_list(items: Any, path: str) -> tuple[SiteDef, ...]:
    if not isinstance(items, list):
        raise ConfigError(path, f"must be a list of tables, got {items!r}")
    out: list[SiteDef] = []
    for i, raw in enumerate(items):
        p = f"{path}[{i}]"
        t = _table(raw, p)
        _known(t, p, {"id", "lat", "lng", "service_s", "zone_m"})
        if "id" not in t or "lat" not in t or "lng" not in t:
            raise ConfigError(p, "needs id, lat and lng")
        sid = t["id"]
        if isinstance(sid, int) and not isinstance(sid, bool):
            sid = str(sid)
        sid = _str(sid, f"{p}.id")
        lat = _num(t["lat"], f"{p}.lat", -90.0)
        lng = _num(t["lng"], f"{p}.lng", -180.0)
        if abs(lat) > 90.0:
            raise ConfigError(f"{p}.lat", f"must be in [-90, 90], got {lat}")
        if abs(lng) > 180.0:
            raise ConfigError(f"{p}.lng", f"must be in [-180, 180], got {lng}")
        out.append(
            SiteDef(
                sid,
                lat,
                lng,
                _num(t.get("service_s", 120.0), f"{p}.service_s", 0.0),
                _num(t.get("zone_m", 3000.0), f"{p}.zone_m", 0.0, lo_open=True),
            )
        )
    return tuple(out)


def _sites_from_scenario(path: str) -> tuple[tuple[SiteDef, ...], TravelModel, float, DispatchParams]:
    from dispatch.sim.generate import plan
    from dispatch.sim.scenario import ScenarioError, load_scenario

    try:
        sc = load_scenario(path)
    except (ScenarioError, OSError) as exc:
        raise ConfigError("sites.scenario", f"{path}: {exc}") from None
    if sc.coordinates != "wgs84":
        raise ConfigError("sites.scenario", f"{path}: the service needs wgs84 sites, got {sc.coordinates}")
    s = plan(sc).sites
    sites = tuple(
        SiteDef(str(int(s.site_id[i])), float(s.y[i]), float(s.x[i]), float(s.service_s[i]), float(s.zone_m[i]))
        for i in range(len(s))
    )
    return sites, sc.travel, sc.utc_offset_s, sc.dispatch


def _sites_from_log(path: str) -> tuple[tuple[SiteDef, ...], TravelModel, float]:
    from dispatch.sim.log import LogError, _read_sites, read_meta

    try:
        meta, _ = read_meta(path)
        s = _read_sites(Path(path), meta)
    except (LogError, OSError) as exc:
        raise ConfigError("sites.log_dir", f"{path}: {exc}") from None
    if meta.coordinates != "wgs84":
        raise ConfigError("sites.log_dir", f"{path}: the service needs wgs84 sites, got {meta.coordinates}")
    sites = tuple(
        SiteDef(str(int(s.site_id[i])), float(s.y[i]), float(s.x[i]), float(s.service_s[i]), float(s.zone_m[i]))
        for i in range(len(s))
    )
    return sites, meta.travel, meta.utc_offset_s


def _tokens(raw: Any, path: str) -> tuple[TokenSpec, ...]:
    if not isinstance(raw, list):
        raise ConfigError(path, f"must be a list of tables, got {raw!r}")
    out: list[TokenSpec] = []
    for i, item in enumerate(raw):
        p = f"{path}[{i}]"
        t = _table(item, p)
        _known(t, p, {"token", "token_env", "roles"})
        if ("token" in t) == ("token_env" in t):
            raise ConfigError(p, "give exactly one of token, token_env")
        if "token" in t:
            tok = _str(t["token"], f"{p}.token")
        else:
            env = _str(t["token_env"], f"{p}.token_env")
            tok = os.environ.get(env, "")
            if not tok:
                raise ConfigError(f"{p}.token_env", f"environment variable {env} is unset or empty")
        roles = t.get("roles")
        if not isinstance(roles, list) or not roles:
            raise ConfigError(f"{p}.roles", f"must be a non-empty list of {list(ROLES)}, got {roles!r}")
        for r in roles:
            if r not in ROLES:
                raise ConfigError(f"{p}.roles", f"unknown role {r!r} (roles: {', '.join(ROLES)})")
        out.append(TokenSpec(tok, frozenset(roles)))
    return tuple(out)


def _dispatch(raw: Any, base: DispatchParams) -> DispatchParams:
    t = _table(raw, "dispatch")
    try:
        return base.with_updates(**dict(t))
    except ParamsError as exc:
        raise ConfigError(f"dispatch.{exc.field}", str(exc).split(": ", 1)[1]) from None
    except TypeError as exc:
        raise ConfigError("dispatch", str(exc)) from None


def parse_config(data: Mapping[str, Any], base_dir: str | os.PathLike[str] = ".") -> ServiceConfig:
    """A ServiceConfig from a parsed TOML document; relative paths are resolved against ``base_dir``."""
    base = Path(base_dir)
    top = {"listen", "journal", "journal_sync", "insecure", "metrics_port", "metrics_host", "policy",
           "policy_process", "policy_nice", "tick_pause_ms", "tick_slots", "grpc_server", "utc_offset_h", "log_level",
           "log_format", "sites", "tls", "auth", "limits", "dispatch", "travel"}  # fmt: skip
    _known(data, "", top)
    kw: dict[str, Any] = {}
    for key in ("listen", "policy", "log_level", "log_format", "journal_sync", "metrics_host", "grpc_server"):
        if key in data:
            kw[key] = _str(data[key], key)
    if "journal" in data:
        kw["journal"] = _path(data["journal"], "journal", base)
    if "insecure" in data:
        kw["insecure"] = _bool(data["insecure"], "insecure")
    if "policy_process" in data:
        kw["policy_process"] = _bool(data["policy_process"], "policy_process")
    if "policy_nice" in data:
        kw["policy_nice"] = _int(data["policy_nice"], "policy_nice", 0)
    if "tick_slots" in data:
        kw["tick_slots"] = _int(data["tick_slots"], "tick_slots", 1)
    if "tick_pause_ms" in data:
        kw["tick_pause_ms"] = _num(data["tick_pause_ms"], "tick_pause_ms", 0.0)
    if "metrics_port" in data:
        kw["metrics_port"] = _int(data["metrics_port"], "metrics_port", 0)
    travel = TravelModel()
    utc_offset_s = 8 * 3600.0
    dispatch = DispatchParams()
    sites_t = _table(data.get("sites", {}), "sites")
    _known(sites_t, "sites", {"scenario", "log_dir", "list", "owned", "group_link_m"})
    sources = [k for k in ("scenario", "log_dir", "list") if k in sites_t]
    if len(sources) != 1:
        raise ConfigError("sites", f"give exactly one of sites.scenario, sites.log_dir, sites.list (got {sources})")
    if "scenario" in sites_t:
        sites, travel, utc_offset_s, dispatch = _sites_from_scenario(_path(sites_t["scenario"], "sites.scenario", base))
    elif "log_dir" in sites_t:
        sites, travel, utc_offset_s = _sites_from_log(_path(sites_t["log_dir"], "sites.log_dir", base))
    else:
        sites = _sites_from_list(sites_t["list"], "sites.list")
    kw["sites"] = sites
    if "owned" in sites_t:
        owned = sites_t["owned"]
        if owned == "all":
            kw["owned"] = None
        elif isinstance(owned, list) and all(isinstance(x, str | int) and not isinstance(x, bool) for x in owned):
            kw["owned"] = frozenset(str(x) for x in owned)
        else:
            raise ConfigError("sites.owned", f'must be "all" or a list of site ids, got {owned!r}')
    if "group_link_m" in sites_t:
        kw["group_link_m"] = _num(sites_t["group_link_m"], "sites.group_link_m", 0.0, lo_open=True)
    if "utc_offset_h" in data:
        h = _num(data["utc_offset_h"], "utc_offset_h", -14.0)
        if h > 14:
            raise ConfigError("utc_offset_h", f"must be within +-14, got {h}")
        utc_offset_s = h * 3600.0
    if "travel" in data:
        try:
            travel = TravelModel.from_json(_table(data["travel"], "travel"), "travel")
        except ParamsError as exc:
            raise ConfigError(exc.field, str(exc).split(": ", 1)[1]) from None
    if travel.round_up_minutes:
        raise ConfigError("travel.round_up_minutes", "not supported by the service")
    if "dispatch" in data:
        dispatch = _dispatch(data["dispatch"], dispatch)
    kw.update(travel=travel, utc_offset_s=utc_offset_s, dispatch=dispatch)
    if "tls" in data:
        t = _table(data["tls"], "tls")
        _known(t, "tls", {"cert", "key", "client_ca"})
        for k, name in (("cert", "tls_cert"), ("key", "tls_key"), ("client_ca", "tls_client_ca")):
            if k in t:
                p = _path(t[k], f"tls.{k}", base)
                if not Path(p).is_file():
                    raise ConfigError(f"tls.{k}", f"no such file: {p}")
                kw[name] = p
    if "auth" in data:
        t = _table(data["auth"], "auth")
        _known(t, "auth", {"tokens"})
        kw["tokens"] = _tokens(t.get("tokens", []), "auth.tokens")
    if "limits" in data:
        t = _table(data["limits"], "limits")
        known = {f for f in Limits.__dataclass_fields__}
        _known(t, "limits", known)
        lim: dict[str, Any] = {}
        for k, v in t.items():
            lim[k] = _num(v, f"limits.{k}", 1.0) if k == "max_dropoff_m" else _int(v, f"limits.{k}", 1)
        kw["limits"] = Limits(**lim)
    return ServiceConfig(**kw)


def load_config(path: str | os.PathLike[str]) -> ServiceConfig:
    """Read and validate a TOML configuration file; ConfigError naming the key on any problem."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("", f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, p.parent)


def override(cfg: ServiceConfig, **changes: Any) -> ServiceConfig:
    """A validated copy with some fields changed (used by tests and the CLI)."""
    return replace(cfg, **changes)


def site_arrays(sites: tuple[SiteDef, ...]) -> tuple[np.ndarray[Any, np.dtype[np.float64]], ...]:
    """(lat, lng) float64[s] of the sites."""
    return (np.array([s.lat for s in sites], dtype=np.float64), np.array([s.lng for s in sites], dtype=np.float64))
