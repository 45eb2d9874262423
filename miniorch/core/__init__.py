"""Primitives every layer may use: settings, clock, logging, object helpers.

Nothing here imports any other miniorch package.
"""
