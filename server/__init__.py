"""fanout-mcp's engine: the task registry, task states, backends and settings. It knows nothing of MCP.

The MCP layer (``fanout_mcp.tools``) and the ``run`` command use only the names below. Each is imported
from its module when first used, so that what imports one name does not pay for all the others (the
Anthropic SDK behind ``open_runtime`` takes over a second): ``fanout-mcp --help`` needs the settings only.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from fanout_mcp.server.backends import Backend, TaskSink
    from fanout_mcp.server.budget import fair_shares
    from fanout_mcp.server.errors import (
        BackendUnavailable,
        FanoutError,
        InvalidInput,
        RegistryClosed,
        TaskFailure,
        UnknownTask,
    )
    from fanout_mcp.server.findings import Action, Conflict, ConflictSide, Location, MergedFinding, Quorum
    from fanout_mcp.server.models import (
        CancelOutcome,
        Counts,
        GroupSummary,
        RetryNotice,
        SpawnReceipt,
        SpawnRequest,
        Statistics,
        SubagentRequest,
        SubagentResult,
        TaskError,
        TaskRequest,
        TaskSnapshot,
        Tokens,
        Usage,
    )
    from fanout_mcp.server.registry import TaskRegistry, open_registry
    from fanout_mcp.server.report import Missing, Source, Synthesis
    from fanout_mcp.server.runtime import Runtime, open_runtime
    from fanout_mcp.server.settings import OPTIONS, Option, Settings, SettingsError, load_settings
    from fanout_mcp.server.state import TERMINAL_STATES, ErrorKind, TaskState
    from fanout_mcp.server.synthesis import Synthesizer

# Each public name and the module (under fanout_mcp.server) it comes from.
_EXPORTS: Final = {
    "Backend": "backends",
    "TaskSink": "backends",
    "fair_shares": "budget",
    "BackendUnavailable": "errors",
    "FanoutError": "errors",
    "InvalidInput": "errors",
    "RegistryClosed": "errors",
    "TaskFailure": "errors",
    "UnknownTask": "errors",
    "Action": "findings",
    "Conflict": "findings",
    "ConflictSide": "findings",
    "Location": "findings",
    "MergedFinding": "findings",
    "Quorum": "findings",
    "CancelOutcome": "models",
    "Counts": "models",
    "GroupSummary": "models",
    "RetryNotice": "models",
    "SpawnReceipt": "models",
    "SpawnRequest": "models",
    "Statistics": "models",
    "SubagentRequest": "models",
    "SubagentResult": "models",
    "TaskError": "models",
    "TaskRequest": "models",
    "TaskSnapshot": "models",
    "Tokens": "models",
    "Usage": "models",
    "TaskRegistry": "registry",
    "open_registry": "registry",
    "Missing": "report",
    "Source": "report",
    "Synthesis": "report",
    "Runtime": "runtime",
    "open_runtime": "runtime",
    "OPTIONS": "settings",
    "Option": "settings",
    "Settings": "settings",
    "SettingsError": "settings",
    "load_settings": "settings",
    "TERMINAL_STATES": "state",
    "ErrorKind": "state",
    "TaskState": "state",
    "Synthesizer": "synthesis",
}

__all__ = [
    "OPTIONS",
    "TERMINAL_STATES",
    "Action",
    "Backend",
    "BackendUnavailable",
    "CancelOutcome",
    "Conflict",
    "ConflictSide",
    "Counts",
    "ErrorKind",
    "FanoutError",
    "GroupSummary",
    "InvalidInput",
    "Location",
    "MergedFinding",
    "Missing",
    "Option",
    "Quorum",
    "RegistryClosed",
    "RetryNotice",
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
