from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CaseRecord(_message.Message):
    __slots__ = ("record_id", "name", "location", "age", "infected_type", "state", "received_at", "received_ts", "path")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    AGE_FIELD_NUMBER: _ClassVar[int]
    INFECTED_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_TS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    name: str
    location: str
    age: int
    infected_type: str
    state: str
    received_at: str
    received_ts: float
    path: str
    def __init__(self, record_id: _Optional[str] = ..., name: _Optional[str] = ..., location: _Optional[str] = ..., age: _Optional[int] = ..., infected_type: _Optional[str] = ..., state: _Optional[str] = ..., received_at: _Optional[str] = ..., received_ts: _Optional[float] = ..., path: _Optional[str] = ...) -> None: ...

class StoreCaseRequest(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: CaseRecord
    def __init__(self, record: _Optional[_Union[CaseRecord, _Mapping]] = ...) -> None: ...

class StoreCaseResponse(_message.Message):
    __slots__ = ("record_id", "created")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    created: bool
    def __init__(self, record_id: _Optional[str] = ..., created: _Optional[bool] = ...) -> None: ...

class StoreCaseResult(_message.Message):
    __slots__ = ("record_id", "status", "error")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[StoreCaseResult.Status]
        STATUS_CREATED: _ClassVar[StoreCaseResult.Status]
        STATUS_DUPLICATE: _ClassVar[StoreCaseResult.Status]
        STATUS_INVALID: _ClassVar[StoreCaseResult.Status]
    STATUS_UNSPECIFIED: StoreCaseResult.Status
    STATUS_CREATED: StoreCaseResult.Status
    STATUS_DUPLICATE: StoreCaseResult.Status
    STATUS_INVALID: StoreCaseResult.Status
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    status: StoreCaseResult.Status
    error: str
    def __init__(self, record_id: _Optional[str] = ..., status: _Optional[_Union[StoreCaseResult.Status, str]] = ..., error: _Optional[str] = ...) -> None: ...

class StoreCasesResponse(_message.Message):
    __slots__ = ("created", "duplicate", "invalid", "results")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    INVALID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    created: int
    duplicate: int
    invalid: int
    results: _containers.RepeatedCompositeFieldContainer[StoreCaseResult]
    def __init__(self, created: _Optional[int] = ..., duplicate: _Optional[int] = ..., invalid: _Optional[int] = ..., results: _Optional[_Iterable[_Union[StoreCaseResult, _Mapping]]] = ...) -> None: ...
