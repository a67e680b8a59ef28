"""Benchmark suite (issue 4): this project's service API against a re-implementation of
the legacy SQLAlchemy design and a raw-driver floor, on SQLite and PostgreSQL.

Run it with `python -m benchmarks` (full, a few minutes) or `python -m benchmarks --smoke`
(tiny sizes, under a minute; CI runs it to keep the code from rotting). It prints one
table per backend and writes JSON (`--out`). Timings are reported, never asserted.
"""
