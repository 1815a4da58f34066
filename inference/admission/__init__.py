"""Admission in front of the engine: degradation levels, the controller that moves between them,
and the gate (itself a `Backend`) that applies them to every request.

Nothing here speaks HTTP or reaches the engine: the gate wraps whatever `Backend` it is given,
and `inference/service.py` wires the triggers (in-process evaluator, Alertmanager webhook,
manual override) to the controller. See docs/degradation.md.
"""
