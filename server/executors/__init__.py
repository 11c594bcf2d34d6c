"""Executors that run tasks outside this process (see ``core/executor.py`` for the seam). Each is
imported only when the settings choose it, so the embedded default needs none of their packages."""
