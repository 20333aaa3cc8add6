"""The local stack: embedded and emulator modes, local scheduler loop, Eventarc stand-in."""
