"""Security over real sockets: bearer tokens with roles, TLS and mutual TLS (certificates generated here with the
``cryptography`` package), and where plain text is allowed."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from svc_fixtures import TOKENS, config_data, make_config, order, running

from dispatch.service.config import ConfigError, parse_config
from dispatch.service.server import create_server
from dispatch.v1 import dispatch_pb2 as pb
from dispatch.v1 import dispatch_pb2_grpc as pbg

TOKEN_LIST = [{"token": t, "roles": r} for t, r in TOKENS.items()]


def _md(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def _code(fn, *args, **kw) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as ei:
        fn(*args, **kw)
    return ei.value.code()


@pytest.mark.parametrize("front", ["aio", "threads"])
def test_tokens_and_roles(tmp_path: Path, front: str):
    cfg = make_config(tmp_path, auth={"tokens": TOKEN_LIST}, grpc_server=front)
    with running(cfg, start_loop=False) as (srv, stub):
        req = pb.SubmitOrderRequest(order=order("auth-1"))
        assert _code(stub.SubmitOrder, req) == grpc.StatusCode.UNAUTHENTICATED
        assert _code(stub.SubmitOrder, req, metadata=_md("wrong")) == grpc.StatusCode.UNAUTHENTICATED
        assert _code(stub.SubmitOrder, req, metadata=_md("riders-token")) == grpc.StatusCode.PERMISSION_DENIED
        assert "auth-1" not in srv.store.orders
        assert stub.SubmitOrder(req, metadata=_md("orders-token")).order.id == "auth-1"
        upd = pb.UpdateParamsRequest(params=pb.Params())
        upd.update_mask.paths.append("dispatch.candidate_k")
        upd.params.dispatch.candidate_k = 5
        assert _code(stub.UpdateParams, upd, metadata=_md("orders-token")) == grpc.StatusCode.PERMISSION_DENIED
        assert stub.UpdateParams(upd, metadata=_md("ops-token")).version == 2
        events = iter([pb.ReportRiderEventsRequest()])
        assert _code(stub.ReportRiderEvents, events, metadata=_md("orders-token")) == grpc.StatusCode.PERMISSION_DENIED
        # Reads are open to every role (with a token).
        assert stub.GetStats(pb.GetStatsRequest(), metadata=_md("riders-token")).site_ids == ["s1", "s2"]
        assert _code(stub.GetStats, pb.GetStatsRequest()) == grpc.StatusCode.UNAUTHENTICATED
        # Health and reflection need no token, so standard tools (grpcurl, load balancers) can use them.
        ch = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
        h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="dispatch.v1.DispatchService"))
        assert h.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        answer = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in answer.list_services_response.service}
        assert "dispatch.v1.DispatchService" in names
        ch.close()


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject: str, key, issuer_name: str, issuer_key, ca: bool, san: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("test-ca", ca_key, "test-ca", ca_key, ca=True)
    srv_key = _key()
    srv = _cert("localhost", srv_key, "test-ca", ca_key, ca=False, san=True)
    cli_key = _key()
    cli = _cert("client", cli_key, "test-ca", ca_key, ca=False)
    files = {"ca": _pem(ca), "server.pem": _pem(srv), "server.key": _pem(srv_key), "client.pem": _pem(cli),
             "client.key": _pem(cli_key)}  # fmt: skip
    out = {}
    for name, data in files.items():
        (d / name).write_bytes(data)
        out[name] = d / name
    return out


def _tls_data(tmp: Path, pki, mutual: bool) -> dict:
    tls = {"cert": str(pki["server.pem"]), "key": str(pki["server.key"])}
    if mutual:
        tls["client_ca"] = str(pki["ca"])
    return config_data(tmp, insecure=False, tls=tls, auth={"tokens": TOKEN_LIST})


def test_tls_and_mutual_tls(tmp_path: Path, pki):
    ca = pki["ca"].read_bytes()
    srv = create_server(parse_config(_tls_data(tmp_path / "a", pki, mutual=False), tmp_path), start_loop=False)
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=ca)
        with grpc.secure_channel(f"localhost:{srv.port}", creds) as ch:
            got = pbg.DispatchServiceStub(ch).GetStats(pb.GetStatsRequest(), metadata=_md("ops-token"), timeout=10)
            assert list(got.site_ids) == ["s1", "s2"]
        with grpc.insecure_channel(f"localhost:{srv.port}") as ch:  # plain text to a TLS port fails
            assert (
                _code(pbg.DispatchServiceStub(ch).GetStats, pb.GetStatsRequest(), timeout=5)
                == grpc.StatusCode.UNAVAILABLE
            )
    finally:
        srv.stop(grace=0.5)
    srv = create_server(parse_config(_tls_data(tmp_path / "b", pki, mutual=True), tmp_path), start_loop=False)
    try:
        with grpc.secure_channel(f"localhost:{srv.port}", grpc.ssl_channel_credentials(root_certificates=ca)) as ch:
            stub = pbg.DispatchServiceStub(ch)
            assert (
                _code(stub.GetStats, pb.GetStatsRequest(), metadata=_md("ops-token"), timeout=5)
                == grpc.StatusCode.UNAVAILABLE
            )
        creds = grpc.ssl_channel_credentials(ca, pki["client.key"].read_bytes(), pki["client.pem"].read_bytes())
        with grpc.secure_channel(f"localhost:{srv.port}", creds) as ch:
            got = pbg.DispatchServiceStub(ch).GetStats(pb.GetStatsRequest(), metadata=_md("ops-token"), timeout=10)
            assert got.riders_online == 0
    finally:
        srv.stop(grace=0.5)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"listen": "0.0.0.0:0"}, "insecure"),
        ({"listen": "10.1.2.3:50051"}, "insecure"),
        ({"insecure": False}, "tls.cert"),
        ({"listen": "nohostport"}, "listen"),
    ],
)
def test_plain_text_only_on_loopback_and_tls_needs_cert(tmp_path: Path, changes, field):
    with pytest.raises(ConfigError) as ei:
        parse_config(config_data(tmp_path, **changes), tmp_path)
    assert ei.value.field == field


def test_tls_without_tokens_is_refused(tmp_path: Path, pki):
    data = _tls_data(tmp_path, pki, mutual=False)
    del data["auth"]
    with pytest.raises(ConfigError) as ei:
        parse_config(data, tmp_path)
    assert ei.value.field == "auth.tokens"
