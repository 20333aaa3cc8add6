"""Use cases the functions call; each takes a ServiceContext and plain values."""
