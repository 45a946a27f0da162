"""Planhat Objectives pipeline: extract-load into DuckDB, SQL models, reverse ETL."""

__version__ = "0.1.0"
