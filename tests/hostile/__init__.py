"""Hostile input for the worker: documents and job metadata built in the tests (nothing
binary is committed), and the servers that carry them (see tests/test_hostile.py)."""
