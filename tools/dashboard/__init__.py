"""The dashboard: every group and task in a browser, updated live, and the self-contained run report.

``Dashboard`` (``app.py``) is a Starlette app that reads the engine through the registry only. It is
mounted at ``/`` of ``fanout-mcp serve`` and, for a stdio server started with ``--dashboard``, served on
a loopback port of its own inside the server's task group (``serving.py``). ``report.py`` writes one
HTML file for a group, with nothing to fetch. Nothing is imported here: ``run`` and ``report`` import
only what they use.
"""
