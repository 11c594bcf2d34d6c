"""fanout-mcp's engine: the task registry, task states, backends and settings. It knows nothing of MCP.

The MCP layer (``fanout_mcp.tools``) and the ``run`` command use only the names below. Each is imported
from its module when first used, so that what imports one name does not pay for all the others (the
Anthropic SDK behind ``open_runtime`` takes over a second): ``fanout-mcp --help`` needs the settings only.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .app.runtime import Runtime, open_runtime
    from .backends import Backend, TaskSink
    from .config.option import Option
    from .config.settings import OPTIONS, Settings, SettingsError, load_settings
    from .core.callers import Caller
    from .core.errors import (
        BackendUnavailable,
        FanoutError,
        InvalidInput,
        LimitReached,
        RegistryClosed,
        TaskFailure,
        UnknownTask,
    )
    from .core.models import (
        CancelOutcome,
        Counts,
        GroupSummary,
        RetryNotice,
        RetryReceipt,
        SpawnReceipt,
        Statistics,
        SubagentRequest,
        SubagentResult,
        TaskError,
        TaskSnapshot,
        Tokens,
        Usage,
    )
    from .core.registry import TaskRegistry, open_registry
    from .core.state import TERMINAL_STATES, ErrorKind, TaskState
    from .fanin.findings import Action, Conflict, ConflictSide, Location, MergedFinding, Quorum
    from .fanin.report import Missing, Source, Synthesis
    from .fanin.synthesis import Synthesizer
    from .intake.requests import SpawnRequest, TaskRequest
    from .intake.shares import fair_shares

# Each public name and the module (under fanout_mcp.server) it comes from.
_EXPORTS: Final = {
    "Backend": "backends",
    "TaskSink": "backends",
    "fair_shares": "intake.shares",
    "BackendUnavailable": "core.errors",
    "FanoutError": "core.errors",
    "InvalidInput": "core.errors",
    "LimitReached": "core.errors",
    "Caller": "core.callers",
    "RegistryClosed": "core.errors",
    "TaskFailure": "core.errors",
    "UnknownTask": "core.errors",
    "Action": "fanin.findings",
    "Conflict": "fanin.findings",
    "ConflictSide": "fanin.findings",
    "Location": "fanin.findings",
    "MergedFinding": "fanin.findings",
    "Quorum": "fanin.findings",
    "CancelOutcome": "core.models",
    "Counts": "core.models",
    "GroupSummary": "core.models",
    "RetryNotice": "core.models",
    "RetryReceipt": "core.models",
    "SpawnReceipt": "core.models",
    "SpawnRequest": "intake.requests",
    "Statistics": "core.models",
    "SubagentRequest": "core.models",
    "SubagentResult": "core.models",
    "TaskError": "core.models",
    "TaskRequest": "intake.requests",
    "TaskSnapshot": "core.models",
    "Tokens": "core.models",
    "Usage": "core.models",
    "TaskRegistry": "core.registry",
    "open_registry": "core.registry",
    "Missing": "fanin.report",
    "Source": "fanin.report",
    "Synthesis": "fanin.report",
    "Runtime": "app.runtime",
    "open_runtime": "app.runtime",
    "OPTIONS": "config.settings",
    "Option": "config.option",
    "Settings": "config.settings",
    "SettingsError": "config.settings",
    "load_settings": "config.settings",
    "TERMINAL_STATES": "core.state",
    "ErrorKind": "core.state",
    "TaskState": "core.state",
    "Synthesizer": "fanin.synthesis",
}

__all__ = [
    "OPTIONS",
    "TERMINAL_STATES",
    "Action",
    "Backend",
    "BackendUnavailable",
    "Caller",
    "CancelOutcome",
    "Conflict",
    "ConflictSide",
    "Counts",
    "ErrorKind",
    "FanoutError",
    "GroupSummary",
    "InvalidInput",
    "LimitReached",
    "Location",
    "MergedFinding",
    "Missing",
    "Option",
    "Quorum",
    "RegistryClosed",
    "RetryNotice",
    "RetryReceipt",
    "Runtime",
    "Settings",
    "SettingsError",
    "Source",
    "SpawnReceipt",
    "SpawnRequest",
    "Statistics",
    "SubagentRequest",
    "SubagentResult",
    "Synthesis",
    "Synthesizer",
    "TaskError",
    "TaskFailure",
    "TaskRegistry",
    "TaskRequest",
    "TaskSink",
    "TaskSnapshot",
    "TaskState",
    "Tokens",
    "UnknownTask",
    "Usage",
    "fair_shares",
    "load_settings",
    "open_registry",
    "open_runtime",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # looked up once
    return value
