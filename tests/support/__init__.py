"""Test helpers shared across test packages (emulator fixtures)."""
