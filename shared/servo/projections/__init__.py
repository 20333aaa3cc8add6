"""Parquet projections of the orchestration state: table schemas, the codec and the state layout."""
