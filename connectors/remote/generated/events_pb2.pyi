from . import models_pb2 as _models_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PriceEvent(_message.Message):
    __slots__ = ("symbol", "price", "bid", "ask", "time_ms")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    BID_FIELD_NUMBER: _ClassVar[int]
    ASK_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    price: str
    bid: str
    ask: str
    time_ms: int
    def __init__(self, symbol: _Optional[str] = ..., price: _Optional[str] = ..., bid: _Optional[str] = ..., ask: _Optional[str] = ..., time_ms: _Optional[int] = ...) -> None: ...

class OrderEvent(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _models_pb2.Order
    def __init__(self, order: _Optional[_Union[_models_pb2.Order, _Mapping]] = ...) -> None: ...

class KlineEvent(_message.Message):
    __slots__ = ("symbol", "interval", "candle")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CANDLE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    interval: str
    candle: _models_pb2.Candle
    def __init__(self, symbol: _Optional[str] = ..., interval: _Optional[str] = ..., candle: _Optional[_Union[_models_pb2.Candle, _Mapping]] = ...) -> None: ...

class AccountEvent(_message.Message):
    __slots__ = ("balances", "positions", "time_ms")
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    balances: _containers.RepeatedCompositeFieldContainer[_models_pb2.Balance]
    positions: _containers.RepeatedCompositeFieldContainer[_models_pb2.Position]
    time_ms: int
    def __init__(self, balances: _Optional[_Iterable[_Union[_models_pb2.Balance, _Mapping]]] = ..., positions: _Optional[_Iterable[_Union[_models_pb2.Position, _Mapping]]] = ..., time_ms: _Optional[int] = ...) -> None: ...

class PositionEvent(_message.Message):
    __slots__ = ("position", "time_ms")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    position: _models_pb2.Position
    time_ms: int
    def __init__(self, position: _Optional[_Union[_models_pb2.Position, _Mapping]] = ..., time_ms: _Optional[int] = ...) -> None: ...
