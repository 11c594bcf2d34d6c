"""``server.…`` and ``tools.…``, as the source tree names them, are the installed ``fanout_mcp.server.…``
and ``fanout_mcp.tools.…`` modules: the same module objects, never a second copy.

Tests and the benchmark import the code by its names in the source tree, so that a static tool (pyright,
an IDE, an import-graph tool) resolves their imports from the files themselves, as it does the code's own
relative imports. At run time this finder, put first on ``sys.meta_path`` by ``install``, answers such an
import with the installed module (importing it under its real name first), so that a class, an exception
or a module-level setting is one object whichever name reached it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Final

_TOPS: Final = ("server", "tools")


class _Alias(importlib.abc.Loader):
    def __init__(self, module: ModuleType) -> None:
        self._module = module
        self._spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self._module

    def exec_module(self, module: ModuleType) -> None:
        # Already executed, under its real name. The import system has just set the module's __spec__ to
        # the alias's: put the real one back, since a relative import the module makes later (inside a
        # function) is resolved against it, and Python warns when it disagrees with __package__.
        module.__spec__ = self._spec


class _SourceNames(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".", 1)[0] not in _TOPS:
            return None
        module = importlib.import_module(f"fanout_mcp.{fullname}")
        return importlib.util.spec_from_loader(fullname, _Alias(module))


def install() -> None:
    """Put the finder first (once): before the path finder, which would load the source files again."""
    if not any(isinstance(finder, _SourceNames) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceNames())


install()
