"""Tool calls run as protocol tasks: the 2026-07-28 ``io.modelcontextprotocol/tasks`` extension
(``extension.py``, Claude Code) and 2025-11-25 core tasks (``core.py``, VS Code), over one book of jobs
(``book.py``) whose ids say what they stand for (``handles.py``). Only ``run_parallel``,
``task_output`` and ``synthesize`` become tasks; a client that asks for none sees no change.
"""
