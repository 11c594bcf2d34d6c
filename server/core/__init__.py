"""The core of the engine: task states, errors, records, the registry and what runs a task."""
