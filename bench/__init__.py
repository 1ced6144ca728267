"""Benchmarks, run on demand (`make bench`, or `python -m bench.board` and so on)."""
