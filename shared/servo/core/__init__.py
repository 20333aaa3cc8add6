"""Pure domain of Servo: no I/O; clocks and id generators are passed in.

Dependency rule: nothing under ``servo.core`` imports another ``servo`` package.
"""
