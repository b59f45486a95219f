"""Benchmarks: side-by-side comparisons under real HTTP load (`python3 tasks.py bench ...`)."""
