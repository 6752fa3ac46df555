"""Generators of labelled verifier cases: answer kinds x surface forms x
reasoning wrappers x languages, plus near misses that must fail.

Labels come from how a case is built, never from running a verifier.
"""
