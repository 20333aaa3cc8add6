"""Servo: an asset-first data orchestrator on Google Cloud serverless pieces."""

__version__ = "0.1.0"
