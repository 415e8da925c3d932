from . import events_pb2 as _events_pb2
from . import models_pb2 as _models_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetNameRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetNameResponse(_message.Message):
    __slots__ = ("name", "consistency_window_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    consistency_window_ms: int
    def __init__(self, name: _Optional[str] = ..., consistency_window_ms: _Optional[int] = ...) -> None: ...

class LoadMarketsRequest(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ...) -> None: ...

class LoadMarketsResponse(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedCompositeFieldContainer[_models_pb2.SymbolInfo]
    def __init__(self, symbols: _Optional[_Iterable[_Union[_models_pb2.SymbolInfo, _Mapping]]] = ...) -> None: ...

class GetSymbolInfoRequest(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    def __init__(self, symbol: _Optional[str] = ...) -> None: ...

class GetSymbolInfoResponse(_message.Message):
    __slots__ = ("symbol_info",)
    SYMBOL_INFO_FIELD_NUMBER: _ClassVar[int]
    symbol_info: _models_pb2.SymbolInfo
    def __init__(self, symbol_info: _Optional[_Union[_models_pb2.SymbolInfo, _Mapping]] = ...) -> None: ...

class PlaceOrderRequest(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _models_pb2.OrderRequest
    def __init__(self, order: _Optional[_Union[_models_pb2.OrderRequest, _Mapping]] = ...) -> None: ...

class PlaceOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _models_pb2.Order
    def __init__(self, order: _Optional[_Union[_models_pb2.Order, _Mapping]] = ...) -> None: ...

class BatchPlaceOrdersRequest(_message.Message):
    __slots__ = ("orders",)
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[_models_pb2.OrderRequest]
    def __init__(self, orders: _Optional[_Iterable[_Union[_models_pb2.OrderRequest, _Mapping]]] = ...) -> None: ...

class BatchPlaceOrdersResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_models_pb2.OrderResult]
    def __init__(self, results: _Optional[_Iterable[_Union[_models_pb2.OrderResult, _Mapping]]] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("symbol", "client_order_id", "exchange_order_id")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    client_order_id: str
    exchange_order_id: str
    def __init__(self, symbol: _Optional[str] = ..., client_order_id: _Optional[str] = ..., exchange_order_id: _Optional[str] = ...) -> None: ...

class CancelOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _models_pb2.Order
    def __init__(self, order: _Optional[_Union[_models_pb2.Order, _Mapping]] = ...) -> None: ...

class BatchCancelOrdersRequest(_message.Message):
    __slots__ = ("symbol", "client_order_ids")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    client_order_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, symbol: _Optional[str] = ..., client_order_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchCancelOrdersResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_models_pb2.OrderResult]
    def __init__(self, results: _Optional[_Iterable[_Union[_models_pb2.OrderResult, _Mapping]]] = ...) -> None: ...

class CancelAllOrdersRequest(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    def __init__(self, symbol: _Optional[str] = ...) -> None: ...

class CancelAllOrdersResponse(_message.Message):
    __slots__ = ("orders",)
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[_models_pb2.Order]
    def __init__(self, orders: _Optional[_Iterable[_Union[_models_pb2.Order, _Mapping]]] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("symbol", "client_order_id", "exchange_order_id")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    client_order_id: str
    exchange_order_id: str
    def __init__(self, symbol: _Optional[str] = ..., client_order_id: _Optional[str] = ..., exchange_order_id: _Optional[str] = ...) -> None: ...

class GetOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _models_pb2.Order
    def __init__(self, order: _Optional[_Union[_models_pb2.Order, _Mapping]] = ...) -> None: ...

class GetOpenOrdersRequest(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    def __init__(self, symbol: _Optional[str] = ...) -> None: ...

class GetOpenOrdersResponse(_message.Message):
    __slots__ = ("orders",)
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[_models_pb2.Order]
    def __init__(self, orders: _Optional[_Iterable[_Union[_models_pb2.Order, _Mapping]]] = ...) -> None: ...

class GetFillsRequest(_message.Message):
    __slots__ = ("symbol", "since_ms")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    since_ms: int
    def __init__(self, symbol: _Optional[str] = ..., since_ms: _Optional[int] = ...) -> None: ...

class GetFillsResponse(_message.Message):
    __slots__ = ("fills",)
    FILLS_FIELD_NUMBER: _ClassVar[int]
    fills: _containers.RepeatedCompositeFieldContainer[_models_pb2.Fill]
    def __init__(self, fills: _Optional[_Iterable[_Union[_models_pb2.Fill, _Mapping]]] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAccountResponse(_message.Message):
    __slots__ = ("balances",)
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    balances: _containers.RepeatedCompositeFieldContainer[_models_pb2.Balance]
    def __init__(self, balances: _Optional[_Iterable[_Union[_models_pb2.Balance, _Mapping]]] = ...) -> None: ...

class GetPositionsRequest(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ...) -> None: ...

class GetPositionsResponse(_message.Message):
    __slots__ = ("positions",)
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    positions: _containers.RepeatedCompositeFieldContainer[_models_pb2.Position]
    def __init__(self, positions: _Optional[_Iterable[_Union[_models_pb2.Position, _Mapping]]] = ...) -> None: ...

class GetHistoricalKlinesRequest(_message.Message):
    __slots__ = ("symbol", "interval", "since_ms", "limit")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    interval: str
    since_ms: int
    limit: int
    def __init__(self, symbol: _Optional[str] = ..., interval: _Optional[str] = ..., since_ms: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class GetHistoricalKlinesResponse(_message.Message):
    __slots__ = ("candles",)
    CANDLES_FIELD_NUMBER: _ClassVar[int]
    candles: _containers.RepeatedCompositeFieldContainer[_models_pb2.Candle]
    def __init__(self, candles: _Optional[_Iterable[_Union[_models_pb2.Candle, _Mapping]]] = ...) -> None: ...

class SubscribePriceRequest(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ...) -> None: ...

class SubscribePriceResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.PriceEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_events_pb2.PriceEvent, _Mapping]]] = ...) -> None: ...

class SubscribeOrdersRequest(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ...) -> None: ...

class SubscribeOrdersResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.OrderEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_events_pb2.OrderEvent, _Mapping]]] = ...) -> None: ...

class SubscribeKlinesRequest(_message.Message):
    __slots__ = ("symbol", "interval")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    interval: str
    def __init__(self, symbol: _Optional[str] = ..., interval: _Optional[str] = ...) -> None: ...

class SubscribeKlinesResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.KlineEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_events_pb2.KlineEvent, _Mapping]]] = ...) -> None: ...

class SubscribeAccountRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SubscribeAccountResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.AccountEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_events_pb2.AccountEvent, _Mapping]]] = ...) -> None: ...

class SubscribePositionsRequest(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ...) -> None: ...

class SubscribePositionsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.PositionEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_events_pb2.PositionEvent, _Mapping]]] = ...) -> None: ...
