"""Benchmarks of the objectives pipeline against its peers and floors (``python -m bench.run``).

See bench/README.md for what is measured, how, and the latest results.
"""
