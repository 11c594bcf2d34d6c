"""How the wire's values travel: as JSON through pydantic (``temporalio.contrib.pydantic``), with one
cache of type adapters for the whole process.

pydantic's converter builds a type's adapter once, where the SDK's default re-reads a dataclass's type
hints for every value it decodes (229 Python calls a task for a spawn's input, past the 2 s a workflow
step may take in the sandbox). But the contrib converter keeps its adapters per instance, and the SDK
makes a new instance for every activity once external storage is set (``DataConverter`` is copied with
each call's storage context, and a copy builds its payload converter anew): building a ``SubagentCall``
adapter for every activity was 8 % of a worker's CPU. Adapters here are kept per type for the process.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import CompositePayloadConverter, DefaultPayloadConverter, JSONPlainPayloadConverter

#: the types read back (the wire's few dataclasses and what the SDK reads itself): well under this
_ADAPTERS = 256


@functools.lru_cache(maxsize=_ADAPTERS)
def _adapter(hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(hint)


class _SharedAdapters(PydanticJSONPlainPayloadConverter):
    """pydantic's JSON converter, its adapters the process's."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        hint: Any = type_hint if type_hint is not None else Any
        try:
            adapter = _adapter(hint)
        except TypeError:  # a hint that cannot be a cache key
            adapter = TypeAdapter(hint)
        return adapter.validate_json(payload.data)


class WirePayloadConverter(CompositePayloadConverter):
    """The SDK's default converters, JSON through ``_SharedAdapters`` (a ``DataConverter``'s
    ``payload_converter_class``: made anew for every call, cheaply)."""

    def __init__(self) -> None:
        super().__init__(
            *(
                _SharedAdapters() if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )
