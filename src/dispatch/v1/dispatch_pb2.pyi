import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RejectionCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECTION_CODE_UNSPECIFIED: _ClassVar[RejectionCode]
    REJECTION_CODE_INVALID_ARGUMENT: _ClassVar[RejectionCode]
    REJECTION_CODE_NOT_FOUND: _ClassVar[RejectionCode]
    REJECTION_CODE_ALREADY_EXISTS: _ClassVar[RejectionCode]
    REJECTION_CODE_RESOURCE_EXHAUSTED: _ClassVar[RejectionCode]
    REJECTION_CODE_FAILED_PRECONDITION: _ClassVar[RejectionCode]

class OrderState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATE_UNSPECIFIED: _ClassVar[OrderState]
    ORDER_STATE_PENDING: _ClassVar[OrderState]
    ORDER_STATE_ASSIGNED: _ClassVar[OrderState]
    ORDER_STATE_PICKED_UP: _ClassVar[OrderState]
    ORDER_STATE_DELIVERED: _ClassVar[OrderState]
    ORDER_STATE_CANCELLED: _ClassVar[OrderState]

class RiderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RIDER_STATUS_UNSPECIFIED: _ClassVar[RiderStatus]
    RIDER_STATUS_OFFLINE: _ClassVar[RiderStatus]
    RIDER_STATUS_ONLINE: _ClassVar[RiderStatus]

class StopKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOP_KIND_UNSPECIFIED: _ClassVar[StopKind]
    STOP_KIND_PICKUP: _ClassVar[StopKind]
    STOP_KIND_DROPOFF: _ClassVar[StopKind]

class RiderEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RIDER_EVENT_KIND_UNSPECIFIED: _ClassVar[RiderEventKind]
    RIDER_EVENT_KIND_LOCATION: _ClassVar[RiderEventKind]
    RIDER_EVENT_KIND_ONLINE: _ClassVar[RiderEventKind]
    RIDER_EVENT_KIND_OFFLINE: _ClassVar[RiderEventKind]
    RIDER_EVENT_KIND_PICKED_UP: _ClassVar[RiderEventKind]
    RIDER_EVENT_KIND_DELIVERED: _ClassVar[RiderEventKind]
    RIDER_EVENT_KIND_REJECTED: _ClassVar[RiderEventKind]

class UnassignedReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNASSIGNED_REASON_UNSPECIFIED: _ClassVar[UnassignedReason]
    UNASSIGNED_REASON_NO_RIDER_IN_REACH: _ClassVar[UnassignedReason]
    UNASSIGNED_REASON_LATE_WITH_EVERY_RIDER: _ClassVar[UnassignedReason]
    UNASSIGNED_REASON_CAPACITY: _ClassVar[UnassignedReason]
    UNASSIGNED_REASON_HELD_FOR_BATCHING: _ClassVar[UnassignedReason]
    UNASSIGNED_REASON_NOT_READY: _ClassVar[UnassignedReason]
    UNASSIGNED_REASON_SHIFT_ENDS: _ClassVar[UnassignedReason]
    UNASSIGNED_REASON_PINNED_RIDER_UNAVAILABLE: _ClassVar[UnassignedReason]
    UNASSIGNED_REASON_REJECTED_BY_RIDER: _ClassVar[UnassignedReason]
    UNASSIGNED_REASON_RIDER_OFFLINE: _ClassVar[UnassignedReason]
    UNASSIGNED_REASON_REASSIGNED: _ClassVar[UnassignedReason]
    UNASSIGNED_REASON_CANCELLED: _ClassVar[UnassignedReason]
    UNASSIGNED_REASON_RIDERS_BUSY: _ClassVar[UnassignedReason]

class AssignmentEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASSIGNMENT_EVENT_KIND_UNSPECIFIED: _ClassVar[AssignmentEventKind]
    ASSIGNMENT_EVENT_KIND_ASSIGNED: _ClassVar[AssignmentEventKind]
    ASSIGNMENT_EVENT_KIND_UNASSIGNED: _ClassVar[AssignmentEventKind]
    ASSIGNMENT_EVENT_KIND_ROUTE_UPDATED: _ClassVar[AssignmentEventKind]

class QuoteDeclineReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUOTE_DECLINE_REASON_UNSPECIFIED: _ClassVar[QuoteDeclineReason]
    QUOTE_DECLINE_REASON_OUTSIDE_EVERY_ZONE: _ClassVar[QuoteDeclineReason]
    QUOTE_DECLINE_REASON_OUTSIDE_SITE_ZONE: _ClassVar[QuoteDeclineReason]
    QUOTE_DECLINE_REASON_SATURATED: _ClassVar[QuoteDeclineReason]
    QUOTE_DECLINE_REASON_TOO_LARGE: _ClassVar[QuoteDeclineReason]

class TripMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIP_MODE_UNSPECIFIED: _ClassVar[TripMode]
    TRIP_MODE_SINGLE_SITE: _ClassVar[TripMode]
    TRIP_MODE_MIXED: _ClassVar[TripMode]

class RoutingTrigger(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTING_TRIGGER_UNSPECIFIED: _ClassVar[RoutingTrigger]
    ROUTING_TRIGGER_NEVER: _ClassVar[RoutingTrigger]
    ROUTING_TRIGGER_ON_ROUTE_CHANGE: _ClassVar[RoutingTrigger]
    ROUTING_TRIGGER_ON_LATE_RISK: _ClassVar[RoutingTrigger]
    ROUTING_TRIGGER_EVERY_TICK: _ClassVar[RoutingTrigger]

class PromiseMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROMISE_MODE_UNSPECIFIED: _ClassVar[PromiseMode]
    PROMISE_MODE_TIERS: _ClassVar[PromiseMode]
    PROMISE_MODE_SLOTS: _ClassVar[PromiseMode]
REJECTION_CODE_UNSPECIFIED: RejectionCode
REJECTION_CODE_INVALID_ARGUMENT: RejectionCode
REJECTION_CODE_NOT_FOUND: RejectionCode
REJECTION_CODE_ALREADY_EXISTS: RejectionCode
REJECTION_CODE_RESOURCE_EXHAUSTED: RejectionCode
REJECTION_CODE_FAILED_PRECONDITION: RejectionCode
ORDER_STATE_UNSPECIFIED: OrderState
ORDER_STATE_PENDING: OrderState
ORDER_STATE_ASSIGNED: OrderState
ORDER_STATE_PICKED_UP: OrderState
ORDER_STATE_DELIVERED: OrderState
ORDER_STATE_CANCELLED: OrderState
RIDER_STATUS_UNSPECIFIED: RiderStatus
RIDER_STATUS_OFFLINE: RiderStatus
RIDER_STATUS_ONLINE: RiderStatus
STOP_KIND_UNSPECIFIED: StopKind
STOP_KIND_PICKUP: StopKind
STOP_KIND_DROPOFF: StopKind
RIDER_EVENT_KIND_UNSPECIFIED: RiderEventKind
RIDER_EVENT_KIND_LOCATION: RiderEventKind
RIDER_EVENT_KIND_ONLINE: RiderEventKind
RIDER_EVENT_KIND_OFFLINE: RiderEventKind
RIDER_EVENT_KIND_PICKED_UP: RiderEventKind
RIDER_EVENT_KIND_DELIVERED: RiderEventKind
RIDER_EVENT_KIND_REJECTED: RiderEventKind
UNASSIGNED_REASON_UNSPECIFIED: UnassignedReason
UNASSIGNED_REASON_NO_RIDER_IN_REACH: UnassignedReason
UNASSIGNED_REASON_LATE_WITH_EVERY_RIDER: UnassignedReason
UNASSIGNED_REASON_CAPACITY: UnassignedReason
UNASSIGNED_REASON_HELD_FOR_BATCHING: UnassignedReason
UNASSIGNED_REASON_NOT_READY: UnassignedReason
UNASSIGNED_REASON_SHIFT_ENDS: UnassignedReason
UNASSIGNED_REASON_PINNED_RIDER_UNAVAILABLE: UnassignedReason
UNASSIGNED_REASON_REJECTED_BY_RIDER: UnassignedReason
UNASSIGNED_REASON_RIDER_OFFLINE: UnassignedReason
UNASSIGNED_REASON_REASSIGNED: UnassignedReason
UNASSIGNED_REASON_CANCELLED: UnassignedReason
UNASSIGNED_REASON_RIDERS_BUSY: UnassignedReason
ASSIGNMENT_EVENT_KIND_UNSPECIFIED: AssignmentEventKind
ASSIGNMENT_EVENT_KIND_ASSIGNED: AssignmentEventKind
ASSIGNMENT_EVENT_KIND_UNASSIGNED: AssignmentEventKind
ASSIGNMENT_EVENT_KIND_ROUTE_UPDATED: AssignmentEventKind
QUOTE_DECLINE_REASON_UNSPECIFIED: QuoteDeclineReason
QUOTE_DECLINE_REASON_OUTSIDE_EVERY_ZONE: QuoteDeclineReason
QUOTE_DECLINE_REASON_OUTSIDE_SITE_ZONE: QuoteDeclineReason
QUOTE_DECLINE_REASON_SATURATED: QuoteDeclineReason
QUOTE_DECLINE_REASON_TOO_LARGE: QuoteDeclineReason
TRIP_MODE_UNSPECIFIED: TripMode
TRIP_MODE_SINGLE_SITE: TripMode
TRIP_MODE_MIXED: TripMode
ROUTING_TRIGGER_UNSPECIFIED: RoutingTrigger
ROUTING_TRIGGER_NEVER: RoutingTrigger
ROUTING_TRIGGER_ON_ROUTE_CHANGE: RoutingTrigger
ROUTING_TRIGGER_ON_LATE_RISK: RoutingTrigger
ROUTING_TRIGGER_EVERY_TICK: RoutingTrigger
PROMISE_MODE_UNSPECIFIED: PromiseMode
PROMISE_MODE_TIERS: PromiseMode
PROMISE_MODE_SLOTS: PromiseMode

class LatLng(_message.Message):
    __slots__ = ("lat", "lng")
    LAT_FIELD_NUMBER: _ClassVar[int]
    LNG_FIELD_NUMBER: _ClassVar[int]
    lat: float
    lng: float
    def __init__(self, lat: _Optional[float] = ..., lng: _Optional[float] = ...) -> None: ...

class Polygon(_message.Message):
    __slots__ = ("exterior",)
    EXTERIOR_FIELD_NUMBER: _ClassVar[int]
    exterior: _containers.RepeatedCompositeFieldContainer[LatLng]
    def __init__(self, exterior: _Optional[_Iterable[_Union[LatLng, _Mapping]]] = ...) -> None: ...

class ServiceZone(_message.Message):
    __slots__ = ("radius_m", "polygon")
    RADIUS_M_FIELD_NUMBER: _ClassVar[int]
    POLYGON_FIELD_NUMBER: _ClassVar[int]
    radius_m: float
    polygon: Polygon
    def __init__(self, radius_m: _Optional[float] = ..., polygon: _Optional[_Union[Polygon, _Mapping]] = ...) -> None: ...

class Rejection(_message.Message):
    __slots__ = ("code", "field", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: RejectionCode
    field: str
    message: str
    def __init__(self, code: _Optional[_Union[RejectionCode, str]] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Site(_message.Message):
    __slots__ = ("id", "position", "pickup_service", "zone")
    ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    PICKUP_SERVICE_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    id: str
    position: LatLng
    pickup_service: _duration_pb2.Duration
    zone: ServiceZone
    def __init__(self, id: _Optional[str] = ..., position: _Optional[_Union[LatLng, _Mapping]] = ..., pickup_service: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., zone: _Optional[_Union[ServiceZone, _Mapping]] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("id", "site_id", "dropoff", "placed_at", "ready_at", "promised_by", "size", "dropoff_service", "pinned_rider_id", "state")
    ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    DROPOFF_FIELD_NUMBER: _ClassVar[int]
    PLACED_AT_FIELD_NUMBER: _ClassVar[int]
    READY_AT_FIELD_NUMBER: _ClassVar[int]
    PROMISED_BY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DROPOFF_SERVICE_FIELD_NUMBER: _ClassVar[int]
    PINNED_RIDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    site_id: str
    dropoff: LatLng
    placed_at: _timestamp_pb2.Timestamp
    ready_at: _timestamp_pb2.Timestamp
    promised_by: _timestamp_pb2.Timestamp
    size: int
    dropoff_service: _duration_pb2.Duration
    pinned_rider_id: str
    state: OrderState
    def __init__(self, id: _Optional[str] = ..., site_id: _Optional[str] = ..., dropoff: _Optional[_Union[LatLng, _Mapping]] = ..., placed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ready_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., promised_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., size: _Optional[int] = ..., dropoff_service: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., pinned_rider_id: _Optional[str] = ..., state: _Optional[_Union[OrderState, str]] = ...) -> None: ...

class RiderShift(_message.Message):
    __slots__ = ("start", "end", "capacity", "speed_factor")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    SPEED_FACTOR_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    capacity: int
    speed_factor: float
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., capacity: _Optional[int] = ..., speed_factor: _Optional[float] = ...) -> None: ...

class Stop(_message.Message):
    __slots__ = ("kind", "order_id", "position", "eta", "frozen")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    FROZEN_FIELD_NUMBER: _ClassVar[int]
    kind: StopKind
    order_id: str
    position: LatLng
    eta: _timestamp_pb2.Timestamp
    frozen: bool
    def __init__(self, kind: _Optional[_Union[StopKind, str]] = ..., order_id: _Optional[str] = ..., position: _Optional[_Union[LatLng, _Mapping]] = ..., eta: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., frozen: _Optional[bool] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("stops",)
    STOPS_FIELD_NUMBER: _ClassVar[int]
    stops: _containers.RepeatedCompositeFieldContainer[Stop]
    def __init__(self, stops: _Optional[_Iterable[_Union[Stop, _Mapping]]] = ...) -> None: ...

class Rider(_message.Message):
    __slots__ = ("id", "status", "position", "position_at", "shift", "route")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    POSITION_AT_FIELD_NUMBER: _ClassVar[int]
    SHIFT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: RiderStatus
    position: LatLng
    position_at: _timestamp_pb2.Timestamp
    shift: RiderShift
    route: Route
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[RiderStatus, str]] = ..., position: _Optional[_Union[LatLng, _Mapping]] = ..., position_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., shift: _Optional[_Union[RiderShift, _Mapping]] = ..., route: _Optional[_Union[Route, _Mapping]] = ...) -> None: ...

class SubmitOrderRequest(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class SubmitOrderResponse(_message.Message):
    __slots__ = ("order", "duplicate")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    order: Order
    duplicate: bool
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class SubmitOrdersRequest(_message.Message):
    __slots__ = ("order", "orders")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    order: Order
    orders: _containers.RepeatedCompositeFieldContainer[Order]
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ..., orders: _Optional[_Iterable[_Union[Order, _Mapping]]] = ...) -> None: ...

class SubmitOrdersResponse(_message.Message):
    __slots__ = ("order_id", "accepted", "rejection", "acks")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    ACKS_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    accepted: SubmitOrderResponse
    rejection: Rejection
    acks: _containers.RepeatedCompositeFieldContainer[SubmitOrdersResponse]
    def __init__(self, order_id: _Optional[str] = ..., accepted: _Optional[_Union[SubmitOrderResponse, _Mapping]] = ..., rejection: _Optional[_Union[Rejection, _Mapping]] = ..., acks: _Optional[_Iterable[_Union[SubmitOrdersResponse, _Mapping]]] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("order_id", "reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    reason: str
    def __init__(self, order_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class GetOrderResponse(_message.Message):
    __slots__ = ("order", "rider_id", "pickup_eta", "dropoff_eta", "unassigned_reason", "picked_up_at", "delivered_at")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    RIDER_ID_FIELD_NUMBER: _ClassVar[int]
    PICKUP_ETA_FIELD_NUMBER: _ClassVar[int]
    DROPOFF_ETA_FIELD_NUMBER: _ClassVar[int]
    UNASSIGNED_REASON_FIELD_NUMBER: _ClassVar[int]
    PICKED_UP_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    order: Order
    rider_id: str
    pickup_eta: _timestamp_pb2.Timestamp
    dropoff_eta: _timestamp_pb2.Timestamp
    unassigned_reason: UnassignedReason
    picked_up_at: _timestamp_pb2.Timestamp
    delivered_at: _timestamp_pb2.Timestamp
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ..., rider_id: _Optional[str] = ..., pickup_eta: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dropoff_eta: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., unassigned_reason: _Optional[_Union[UnassignedReason, str]] = ..., picked_up_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RiderEvent(_message.Message):
    __slots__ = ("rider_id", "kind", "at", "position", "order_id", "shift")
    RIDER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SHIFT_FIELD_NUMBER: _ClassVar[int]
    rider_id: str
    kind: RiderEventKind
    at: _timestamp_pb2.Timestamp
    position: LatLng
    order_id: str
    shift: RiderShift
    def __init__(self, rider_id: _Optional[str] = ..., kind: _Optional[_Union[RiderEventKind, str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., position: _Optional[_Union[LatLng, _Mapping]] = ..., order_id: _Optional[str] = ..., shift: _Optional[_Union[RiderShift, _Mapping]] = ...) -> None: ...

class ReportRiderEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[RiderEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[RiderEvent, _Mapping]]] = ...) -> None: ...

class RiderEventRejection(_message.Message):
    __slots__ = ("index", "rider_id", "rejection")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    RIDER_ID_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    index: int
    rider_id: str
    rejection: Rejection
    def __init__(self, index: _Optional[int] = ..., rider_id: _Optional[str] = ..., rejection: _Optional[_Union[Rejection, _Mapping]] = ...) -> None: ...

class ReportRiderEventsResponse(_message.Message):
    __slots__ = ("accepted", "rejections")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejections: _containers.RepeatedCompositeFieldContainer[RiderEventRejection]
    def __init__(self, accepted: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[RiderEventRejection, _Mapping]]] = ...) -> None: ...

class GetRiderRequest(_message.Message):
    __slots__ = ("rider_id",)
    RIDER_ID_FIELD_NUMBER: _ClassVar[int]
    rider_id: str
    def __init__(self, rider_id: _Optional[str] = ...) -> None: ...

class GetRiderResponse(_message.Message):
    __slots__ = ("rider",)
    RIDER_FIELD_NUMBER: _ClassVar[int]
    rider: Rider
    def __init__(self, rider: _Optional[_Union[Rider, _Mapping]] = ...) -> None: ...

class GetSiteRequest(_message.Message):
    __slots__ = ("site_id",)
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    def __init__(self, site_id: _Optional[str] = ...) -> None: ...

class GetSiteResponse(_message.Message):
    __slots__ = ("site",)
    SITE_FIELD_NUMBER: _ClassVar[int]
    site: Site
    def __init__(self, site: _Optional[_Union[Site, _Mapping]] = ...) -> None: ...

class AssignmentEvent(_message.Message):
    __slots__ = ("sequence", "at", "kind", "order_id", "rider_id", "route", "reason")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    RIDER_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    at: _timestamp_pb2.Timestamp
    kind: AssignmentEventKind
    order_id: str
    rider_id: str
    route: Route
    reason: UnassignedReason
    def __init__(self, sequence: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[AssignmentEventKind, str]] = ..., order_id: _Optional[str] = ..., rider_id: _Optional[str] = ..., route: _Optional[_Union[Route, _Mapping]] = ..., reason: _Optional[_Union[UnassignedReason, str]] = ...) -> None: ...

class WatchAssignmentsRequest(_message.Message):
    __slots__ = ("from_sequence",)
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    from_sequence: int
    def __init__(self, from_sequence: _Optional[int] = ...) -> None: ...

class WatchAssignmentsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AssignmentEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[AssignmentEvent, _Mapping]]] = ...) -> None: ...

class QuoteRequest(_message.Message):
    __slots__ = ("address", "size", "site_id")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    address: LatLng
    size: int
    site_id: str
    def __init__(self, address: _Optional[_Union[LatLng, _Mapping]] = ..., size: _Optional[int] = ..., site_id: _Optional[str] = ...) -> None: ...

class QuoteOption(_message.Message):
    __slots__ = ("site_id", "promised_by", "estimated_delivery", "on_time_probability", "tier", "deferred")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    PROMISED_BY_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    ON_TIME_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    DEFERRED_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    promised_by: _timestamp_pb2.Timestamp
    estimated_delivery: _timestamp_pb2.Timestamp
    on_time_probability: float
    tier: _duration_pb2.Duration
    deferred: bool
    def __init__(self, site_id: _Optional[str] = ..., promised_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., estimated_delivery: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., on_time_probability: _Optional[float] = ..., tier: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., deferred: _Optional[bool] = ...) -> None: ...

class QuoteResponse(_message.Message):
    __slots__ = ("quoted_at", "options", "decline_reason")
    QUOTED_AT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    DECLINE_REASON_FIELD_NUMBER: _ClassVar[int]
    quoted_at: _timestamp_pb2.Timestamp
    options: _containers.RepeatedCompositeFieldContainer[QuoteOption]
    decline_reason: QuoteDeclineReason
    def __init__(self, quoted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., options: _Optional[_Iterable[_Union[QuoteOption, _Mapping]]] = ..., decline_reason: _Optional[_Union[QuoteDeclineReason, str]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OrderStateCount(_message.Message):
    __slots__ = ("state", "count")
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    state: OrderState
    count: int
    def __init__(self, state: _Optional[_Union[OrderState, str]] = ..., count: _Optional[int] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("at", "site_ids", "orders_by_state", "riders_online", "orders_at_risk", "ticks", "last_tick_at", "last_tick_duration", "last_sequence")
    AT_FIELD_NUMBER: _ClassVar[int]
    SITE_IDS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_BY_STATE_FIELD_NUMBER: _ClassVar[int]
    RIDERS_ONLINE_FIELD_NUMBER: _ClassVar[int]
    ORDERS_AT_RISK_FIELD_NUMBER: _ClassVar[int]
    TICKS_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_DURATION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    site_ids: _containers.RepeatedScalarFieldContainer[str]
    orders_by_state: _containers.RepeatedCompositeFieldContainer[OrderStateCount]
    riders_online: int
    orders_at_risk: int
    ticks: int
    last_tick_at: _timestamp_pb2.Timestamp
    last_tick_duration: _duration_pb2.Duration
    last_sequence: int
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., site_ids: _Optional[_Iterable[str]] = ..., orders_by_state: _Optional[_Iterable[_Union[OrderStateCount, _Mapping]]] = ..., riders_online: _Optional[int] = ..., orders_at_risk: _Optional[int] = ..., ticks: _Optional[int] = ..., last_tick_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_tick_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class CostWeights(_message.Message):
    __slots__ = ("per_rider_second", "per_metre", "per_late_second")
    PER_RIDER_SECOND_FIELD_NUMBER: _ClassVar[int]
    PER_METRE_FIELD_NUMBER: _ClassVar[int]
    PER_LATE_SECOND_FIELD_NUMBER: _ClassVar[int]
    per_rider_second: float
    per_metre: float
    per_late_second: float
    def __init__(self, per_rider_second: _Optional[float] = ..., per_metre: _Optional[float] = ..., per_late_second: _Optional[float] = ...) -> None: ...

class RoutingParams(_message.Message):
    __slots__ = ("trigger", "time_limit", "min_stops")
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MIN_STOPS_FIELD_NUMBER: _ClassVar[int]
    trigger: RoutingTrigger
    time_limit: _duration_pb2.Duration
    min_stops: int
    def __init__(self, trigger: _Optional[_Union[RoutingTrigger, str]] = ..., time_limit: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., min_stops: _Optional[int] = ...) -> None: ...

class DispatchParams(_message.Message):
    __slots__ = ("tick", "batching_hold", "max_orders_per_rider", "cost_weights", "candidate_k", "routing", "trip_mode")
    TICK_FIELD_NUMBER: _ClassVar[int]
    BATCHING_HOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_ORDERS_PER_RIDER_FIELD_NUMBER: _ClassVar[int]
    COST_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_K_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    TRIP_MODE_FIELD_NUMBER: _ClassVar[int]
    tick: _duration_pb2.Duration
    batching_hold: _duration_pb2.Duration
    max_orders_per_rider: int
    cost_weights: CostWeights
    candidate_k: int
    routing: RoutingParams
    trip_mode: TripMode
    def __init__(self, tick: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., batching_hold: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_orders_per_rider: _Optional[int] = ..., cost_weights: _Optional[_Union[CostWeights, _Mapping]] = ..., candidate_k: _Optional[int] = ..., routing: _Optional[_Union[RoutingParams, _Mapping]] = ..., trip_mode: _Optional[_Union[TripMode, str]] = ...) -> None: ...

class PromiseParams(_message.Message):
    __slots__ = ("mode", "tiers", "slot_length", "slot_horizon", "min_on_time_probability")
    MODE_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    SLOT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SLOT_HORIZON_FIELD_NUMBER: _ClassVar[int]
    MIN_ON_TIME_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    mode: PromiseMode
    tiers: _containers.RepeatedCompositeFieldContainer[_duration_pb2.Duration]
    slot_length: _duration_pb2.Duration
    slot_horizon: _duration_pb2.Duration
    min_on_time_probability: float
    def __init__(self, mode: _Optional[_Union[PromiseMode, str]] = ..., tiers: _Optional[_Iterable[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]]] = ..., slot_length: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., slot_horizon: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., min_on_time_probability: _Optional[float] = ...) -> None: ...

class Params(_message.Message):
    __slots__ = ("dispatch", "promise")
    DISPATCH_FIELD_NUMBER: _ClassVar[int]
    PROMISE_FIELD_NUMBER: _ClassVar[int]
    dispatch: DispatchParams
    promise: PromiseParams
    def __init__(self, dispatch: _Optional[_Union[DispatchParams, _Mapping]] = ..., promise: _Optional[_Union[PromiseParams, _Mapping]] = ...) -> None: ...

class GetParamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetParamsResponse(_message.Message):
    __slots__ = ("params", "version")
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    params: Params
    version: int
    def __init__(self, params: _Optional[_Union[Params, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class UpdateParamsRequest(_message.Message):
    __slots__ = ("params", "update_mask")
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    params: Params
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, params: _Optional[_Union[Params, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateParamsResponse(_message.Message):
    __slots__ = ("params", "version")
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    params: Params
    version: int
    def __init__(self, params: _Optional[_Union[Params, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...
