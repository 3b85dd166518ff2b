"""Correctness checkers shared by the tests and the benchmark scripts."""
