"""The dispatch.v1 API contract: generated code, the service's shape, the proto's conventions, no drift."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, duration_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from dispatch.v1 import dispatch_pb2, dispatch_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PROTO = "dispatch/v1/dispatch.proto"

# RPC name -> (client streaming, server streaming).
EXPECTED_RPCS: dict[str, tuple[bool, bool]] = {
    "SubmitOrder": (False, False),
    "SubmitOrders": (True, True),
    "CancelOrder": (False, False),
    "ReportRiderEvents": (True, False),
    "WatchAssignments": (False, True),
    "Quote": (False, False),
    "GetOrder": (False, False),
    "GetRider": (False, False),
    "GetSite": (False, False),
    "GetStats": (False, False),
    "GetParams": (False, False),
    "UpdateParams": (False, False),
}

# Field numbers of FileDescriptorProto, DescriptorProto, EnumDescriptorProto and ServiceDescriptorProto, as
# used in SourceCodeInfo.Location.path.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM = 2, 3, 4
ENUM_VALUE = 2
SERVICE_METHOD = 2

SERVICE = dispatch_pb2.DESCRIPTOR.services_by_name["DispatchService"]
MESSAGES = dispatch_pb2.DESCRIPTOR.message_types_by_name


def all_messages() -> Iterator[Descriptor]:
    """Every message of the file, nested ones included."""
    stack = list(dispatch_pb2.DESCRIPTOR.message_types_by_name.values())
    while stack:
        message = stack.pop()
        yield message
        stack.extend(message.nested_types)


def all_enums() -> Iterator[EnumDescriptor]:
    """Every enum of the file, nested ones included."""
    yield from dispatch_pb2.DESCRIPTOR.enum_types_by_name.values()
    for message in all_messages():
        yield from message.enum_types


@pytest.fixture(scope="module")
def proto_with_source_info(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorProto:
    """The proto compiled by protoc with source info (comments), read back from a descriptor set."""
    out = tmp_path_factory.mktemp("descriptor") / "dispatch.pb"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            str(PROTO_ROOT / PROTO),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"protoc failed on the proto:\n{result.stderr}"
    file_set = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (file_proto,) = file_set.file
    assert file_proto.name == PROTO
    return file_proto


def commented_elements(
    file_proto: descriptor_pb2.FileDescriptorProto,
) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(qualified name, source path) of every message, field, enum, enum value, service and method."""

    def enum_elements(
        enum: descriptor_pb2.EnumDescriptorProto, prefix: str, path: tuple[int, ...]
    ) -> Iterator[tuple[str, tuple[int, ...]]]:
        yield f"enum {prefix}{enum.name}", path
        for i, value in enumerate(enum.value):
            yield f"enum value {prefix}{enum.name}.{value.name}", (*path, ENUM_VALUE, i)

    def message_elements(
        message: descriptor_pb2.DescriptorProto, prefix: str, path: tuple[int, ...]
    ) -> Iterator[tuple[str, tuple[int, ...]]]:
        name = f"{prefix}{message.name}"
        yield f"message {name}", path
        for i, field in enumerate(message.field):
            yield f"field {name}.{field.name}", (*path, MESSAGE_FIELD, i)
        for i, nested in enumerate(message.nested_type):
            yield from message_elements(nested, f"{name}.", (*path, MESSAGE_NESTED, i))
        for i, enum in enumerate(message.enum_type):
            yield from enum_elements(enum, f"{name}.", (*path, MESSAGE_ENUM, i))

    for i, message in enumerate(file_proto.message_type):
        yield from message_elements(message, "", (FILE_MESSAGE, i))
    for i, enum in enumerate(file_proto.enum_type):
        yield from enum_elements(enum, "", (FILE_ENUM, i))
    for i, service in enumerate(file_proto.service):
        yield f"service {service.name}", (FILE_SERVICE, i)
        for j, method in enumerate(service.method):
            yield f"rpc {service.name}.{method.name}", (FILE_SERVICE, i, SERVICE_METHOD, j)


def test_generated_modules_import() -> None:
    assert dispatch_pb2.DESCRIPTOR.package == "dispatch.v1"
    assert dispatch_pb2.DESCRIPTOR.name == PROTO
    assert hasattr(dispatch_pb2_grpc, "DispatchServiceStub")
    assert hasattr(dispatch_pb2_grpc, "DispatchServiceServicer")
    assert hasattr(dispatch_pb2_grpc, "add_DispatchServiceServicer_to_server")


def test_service_has_every_rpc_with_its_streaming_kind() -> None:
    methods = SERVICE.methods_by_name
    missing = sorted(set(EXPECTED_RPCS) - set(methods))
    assert not missing, f"DispatchService lacks {missing}"
    for name, (client_streaming, server_streaming) in EXPECTED_RPCS.items():
        method = methods[name]
        assert (method.client_streaming, method.server_streaming) == (client_streaming, server_streaming), name


def test_every_rpc_has_its_own_request_and_response() -> None:
    seen: set[str] = set()
    for method in SERVICE.methods:
        assert method.input_type.name == f"{method.name}Request", method.name
        assert method.output_type.name == f"{method.name}Response", method.name
        for message in (method.input_type, method.output_type):
            assert message.full_name not in seen, f"{message.full_name} is shared between RPCs"
            seen.add(message.full_name)


def test_watch_assignments_is_resumable_by_sequence() -> None:
    request = dispatch_pb2.WatchAssignmentsRequest.DESCRIPTOR
    assert request.fields_by_name["from_sequence"].type == FieldDescriptor.TYPE_UINT64
    event = dispatch_pb2.AssignmentEvent.DESCRIPTOR
    assert event.fields_by_name["sequence"].type == FieldDescriptor.TYPE_UINT64
    response = dispatch_pb2.WatchAssignmentsResponse.DESCRIPTOR
    assert response.fields_by_name["events"].message_type is event


def test_every_enum_starts_with_unspecified_and_prefixes_its_values() -> None:
    enums = list(all_enums())
    assert len(enums) >= 6
    for enum in enums:
        zero = enum.values_by_number[0]
        prefix = "".join(f"_{c}" if c.isupper() else c.upper() for c in enum.name).lstrip("_")
        assert zero.name == f"{prefix}_UNSPECIFIED", f"{enum.full_name}: value 0 is {zero.name}"
        for value in enum.values:
            assert value.name.startswith(f"{prefix}_"), f"{enum.full_name}.{value.name} lacks the prefix {prefix}_"


def test_times_are_timestamps_and_spans_durations() -> None:
    timestamp = timestamp_pb2.Timestamp.DESCRIPTOR
    duration = duration_pb2.Duration.DESCRIPTOR
    instants = 0
    for message in all_messages():
        for field in message.fields:
            if field.name.endswith(("_at", "_by", "_eta")) or field.name in {"at", "eta", "start", "end"}:
                assert field.message_type is timestamp, f"{message.full_name}.{field.name} should be a Timestamp"
                instants += 1
            # A span in a scalar (tick_s, hold_ms, ...) would hide its unit in the name; spans are Durations.
            assert not field.name.endswith(("_s", "_ms", "_sec", "_secs", "_seconds", "_minutes")), (
                f"{message.full_name}.{field.name} should be a Duration"
            )
    assert instants >= 10
    for message, field in [
        ("Site", "pickup_service"),
        ("Order", "dropoff_service"),
        ("DispatchParams", "tick"),
        ("DispatchParams", "batching_hold"),
        ("RoutingParams", "time_limit"),
        ("PromiseParams", "tiers"),
        ("PromiseParams", "slot_length"),
        ("QuoteOption", "tier"),
        ("GetStatsResponse", "last_tick_duration"),
    ]:
        assert MESSAGES[message].fields_by_name[field].message_type is duration, f"{message}.{field}"


def test_positions_are_latlng_degrees() -> None:
    latlng = dispatch_pb2.LatLng.DESCRIPTOR
    assert [(f.name, f.type) for f in latlng.fields] == [
        ("lat", FieldDescriptor.TYPE_DOUBLE),
        ("lng", FieldDescriptor.TYPE_DOUBLE),
    ]
    for message, field in [
        ("Site", "position"),
        ("Order", "dropoff"),
        ("Rider", "position"),
        ("Stop", "position"),
        ("RiderEvent", "position"),
        ("QuoteRequest", "address"),
    ]:
        assert MESSAGES[message].fields_by_name[field].message_type is latlng, f"{message}.{field}"


def test_every_element_of_the_proto_has_a_leading_comment(
    proto_with_source_info: descriptor_pb2.FileDescriptorProto,
) -> None:
    comments = {
        tuple(location.path): location.leading_comments.strip()
        for location in proto_with_source_info.source_code_info.location
    }
    elements = list(commented_elements(proto_with_source_info))
    assert sum(1 for name, _ in elements if name.startswith("field ")) >= 100
    uncommented = [name for name, path in elements if not comments.get(path)]
    assert not uncommented, f"elements without a leading comment: {uncommented}"


def test_order_round_trips_through_the_wire_format() -> None:
    order = dispatch_pb2.Order(
        id="o-1",
        site_id="s-42",
        dropoff=dispatch_pb2.LatLng(lat=31.2304, lng=121.4737),
        size=3,
        pinned_rider_id="r-7",
        state=dispatch_pb2.ORDER_STATE_ASSIGNED,
    )
    order.placed_at.FromSeconds(1_700_000_000)
    order.ready_at.FromSeconds(1_700_000_300)
    order.promised_by.FromSeconds(1_700_002_700)
    order.dropoff_service.FromSeconds(90)

    data = order.SerializeToString()
    parsed = dispatch_pb2.Order.FromString(data)

    assert parsed == order
    assert parsed.dropoff.lat == pytest.approx(31.2304)
    assert parsed.promised_by.ToSeconds() - parsed.placed_at.ToSeconds() == 2_700
    assert parsed.dropoff_service.ToSeconds() == 90
    assert parsed.state == dispatch_pb2.ORDER_STATE_ASSIGNED
    assert parsed.HasField("ready_at")


def test_submit_orders_ack_carries_either_acceptance_or_rejection() -> None:
    ack = dispatch_pb2.SubmitOrdersResponse(order_id="o-1")
    assert ack.WhichOneof("result") is None
    ack.rejection.code = dispatch_pb2.REJECTION_CODE_INVALID_ARGUMENT
    ack.rejection.field = "order.size"
    assert ack.WhichOneof("result") == "rejection"
    ack.accepted.order.id = "o-1"
    assert ack.WhichOneof("result") == "accepted"
    assert not ack.HasField("rejection")


class _AckingServicer(dispatch_pb2_grpc.DispatchServiceServicer):
    """Acknowledges each streamed order at once: accepts orders with size > 0, refuses the others."""

    def SubmitOrders(  # noqa: N802 (the generated servicer's method name)
        self, request_iterator: Iterator[dispatch_pb2.SubmitOrdersRequest], context: grpc.ServicerContext
    ) -> Iterator[dispatch_pb2.SubmitOrdersResponse]:
        for request in request_iterator:
            ack = dispatch_pb2.SubmitOrdersResponse(order_id=request.order.id)
            if request.order.size > 0:
                ack.accepted.order.CopyFrom(request.order)
                ack.accepted.order.state = dispatch_pb2.ORDER_STATE_PENDING
            else:
                ack.rejection.code = dispatch_pb2.REJECTION_CODE_INVALID_ARGUMENT
                ack.rejection.field = "order.size"
            yield ack


def test_generated_stubs_carry_per_order_acks_over_a_real_socket() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    dispatch_pb2_grpc.add_DispatchServiceServicer_to_server(_AckingServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            orders = [dispatch_pb2.Order(id=f"o-{i}", site_id="s-1", size=i % 3) for i in range(6)]
            requests = (dispatch_pb2.SubmitOrdersRequest(order=order) for order in orders)
            acks = list(stub.SubmitOrders(requests, timeout=10))
            # An RPC the servicer does not implement answers UNIMPLEMENTED rather than failing the channel.
            with pytest.raises(grpc.RpcError) as excinfo:
                stub.GetStats(dispatch_pb2.GetStatsRequest(), timeout=10)
            assert excinfo.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(grace=None)
    assert [ack.order_id for ack in acks] == [order.id for order in orders]
    assert [ack.WhichOneof("result") for ack in acks] == [
        "accepted" if order.size > 0 else "rejection" for order in orders
    ]
    accepted = [ack.accepted.order for ack in acks if ack.HasField("accepted")]
    assert len(accepted) == 4
    assert all(order.state == dispatch_pb2.ORDER_STATE_PENDING for order in accepted)


def test_committed_code_matches_the_proto() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"proto drift:\n{result.stdout}{result.stderr}"
