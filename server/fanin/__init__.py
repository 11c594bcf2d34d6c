"""From many answers to one: the deterministic merge, findings, the model synthesis, reports."""
