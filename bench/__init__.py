"""Benchmarks for the gateway (not tests): mock upstream, pass-through floor, load, report."""
