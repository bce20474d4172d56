"""Challenger simulation: a candidate weights configuration ranked into the sandbox and
compared with the live week, before it ships."""
