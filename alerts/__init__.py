"""Decisions: verdicts per participant, events, delivery, console and metrics.

This package sits at the end of the flow and imports neither `streamer` nor `inference`.
"""
