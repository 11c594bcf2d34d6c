"""fanout-mcp's engine: the task registry, task states, backends and settings. It knows nothing of MCP.

The MCP layer (``fanout_mcp.tools``) and the ``run`` command use only the names below.
"""

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
