"""Tests of the Parquet projections."""
