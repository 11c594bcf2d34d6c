"""From a caller's request to planned tasks: checks, files, the subagent prompt, answer schemas."""
