from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderSide(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_SIDE_UNSPECIFIED: _ClassVar[OrderSide]
    ORDER_SIDE_BUY: _ClassVar[OrderSide]
    ORDER_SIDE_SELL: _ClassVar[OrderSide]

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATUS_UNSPECIFIED: _ClassVar[OrderStatus]
    ORDER_STATUS_OPEN: _ClassVar[OrderStatus]
    ORDER_STATUS_PARTIALLY_FILLED: _ClassVar[OrderStatus]
    ORDER_STATUS_FILLED: _ClassVar[OrderStatus]
    ORDER_STATUS_CANCELED: _ClassVar[OrderStatus]
    ORDER_STATUS_EXPIRED: _ClassVar[OrderStatus]
    ORDER_STATUS_REJECTED: _ClassVar[OrderStatus]

class MarketType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MARKET_TYPE_UNSPECIFIED: _ClassVar[MarketType]
    MARKET_TYPE_SPOT: _ClassVar[MarketType]
    MARKET_TYPE_LINEAR: _ClassVar[MarketType]
ORDER_SIDE_UNSPECIFIED: OrderSide
ORDER_SIDE_BUY: OrderSide
ORDER_SIDE_SELL: OrderSide
ORDER_STATUS_UNSPECIFIED: OrderStatus
ORDER_STATUS_OPEN: OrderStatus
ORDER_STATUS_PARTIALLY_FILLED: OrderStatus
ORDER_STATUS_FILLED: OrderStatus
ORDER_STATUS_CANCELED: OrderStatus
ORDER_STATUS_EXPIRED: OrderStatus
ORDER_STATUS_REJECTED: OrderStatus
MARKET_TYPE_UNSPECIFIED: MarketType
MARKET_TYPE_SPOT: MarketType
MARKET_TYPE_LINEAR: MarketType

class SymbolInfo(_message.Message):
    __slots__ = ("symbol", "base_asset", "quote_asset", "market_type", "tick_size", "lot_size", "min_quantity", "min_notional")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    BASE_ASSET_FIELD_NUMBER: _ClassVar[int]
    QUOTE_ASSET_FIELD_NUMBER: _ClassVar[int]
    MARKET_TYPE_FIELD_NUMBER: _ClassVar[int]
    TICK_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOT_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIN_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    MIN_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    base_asset: str
    quote_asset: str
    market_type: MarketType
    tick_size: str
    lot_size: str
    min_quantity: str
    min_notional: str
    def __init__(self, symbol: _Optional[str] = ..., base_asset: _Optional[str] = ..., quote_asset: _Optional[str] = ..., market_type: _Optional[_Union[MarketType, str]] = ..., tick_size: _Optional[str] = ..., lot_size: _Optional[str] = ..., min_quantity: _Optional[str] = ..., min_notional: _Optional[str] = ...) -> None: ...

class OrderRequest(_message.Message):
    __slots__ = ("symbol", "client_order_id", "side", "price", "quantity", "post_only", "reduce_only")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    POST_ONLY_FIELD_NUMBER: _ClassVar[int]
    REDUCE_ONLY_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    client_order_id: str
    side: OrderSide
    price: str
    quantity: str
    post_only: bool
    reduce_only: bool
    def __init__(self, symbol: _Optional[str] = ..., client_order_id: _Optional[str] = ..., side: _Optional[_Union[OrderSide, str]] = ..., price: _Optional[str] = ..., quantity: _Optional[str] = ..., post_only: _Optional[bool] = ..., reduce_only: _Optional[bool] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("symbol", "client_order_id", "exchange_order_id", "side", "price", "quantity", "status", "filled_quantity", "average_price", "fee", "update_time_ms", "reason", "post_only", "reduce_only")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FILLED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRICE_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    POST_ONLY_FIELD_NUMBER: _ClassVar[int]
    REDUCE_ONLY_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    client_order_id: str
    exchange_order_id: str
    side: OrderSide
    price: str
    quantity: str
    status: OrderStatus
    filled_quantity: str
    average_price: str
    fee: str
    update_time_ms: int
    reason: str
    post_only: bool
    reduce_only: bool
    def __init__(self, symbol: _Optional[str] = ..., client_order_id: _Optional[str] = ..., exchange_order_id: _Optional[str] = ..., side: _Optional[_Union[OrderSide, str]] = ..., price: _Optional[str] = ..., quantity: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., filled_quantity: _Optional[str] = ..., average_price: _Optional[str] = ..., fee: _Optional[str] = ..., update_time_ms: _Optional[int] = ..., reason: _Optional[str] = ..., post_only: _Optional[bool] = ..., reduce_only: _Optional[bool] = ...) -> None: ...

class Fill(_message.Message):
    __slots__ = ("symbol", "trade_id", "client_order_id", "exchange_order_id", "side", "price", "quantity", "fee", "time_ms", "is_maker")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    IS_MAKER_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    trade_id: str
    client_order_id: str
    exchange_order_id: str
    side: OrderSide
    price: str
    quantity: str
    fee: str
    time_ms: int
    is_maker: bool
    def __init__(self, symbol: _Optional[str] = ..., trade_id: _Optional[str] = ..., client_order_id: _Optional[str] = ..., exchange_order_id: _Optional[str] = ..., side: _Optional[_Union[OrderSide, str]] = ..., price: _Optional[str] = ..., quantity: _Optional[str] = ..., fee: _Optional[str] = ..., time_ms: _Optional[int] = ..., is_maker: _Optional[bool] = ...) -> None: ...

class Candle(_message.Message):
    __slots__ = ("open_time_ms", "open", "high", "low", "close", "volume")
    OPEN_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    open_time_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    def __init__(self, open_time_ms: _Optional[int] = ..., open: _Optional[str] = ..., high: _Optional[str] = ..., low: _Optional[str] = ..., close: _Optional[str] = ..., volume: _Optional[str] = ...) -> None: ...

class Balance(_message.Message):
    __slots__ = ("asset", "free", "locked")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    asset: str
    free: str
    locked: str
    def __init__(self, asset: _Optional[str] = ..., free: _Optional[str] = ..., locked: _Optional[str] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("symbol", "quantity", "entry_price")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    quantity: str
    entry_price: str
    def __init__(self, symbol: _Optional[str] = ..., quantity: _Optional[str] = ..., entry_price: _Optional[str] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "type", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    type: str
    message: str
    def __init__(self, code: _Optional[int] = ..., type: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class OrderResult(_message.Message):
    __slots__ = ("order", "error")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    order: Order
    error: Error
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...
