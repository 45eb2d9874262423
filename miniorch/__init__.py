"""miniorch: a small Kubernetes, in Python, that runs real sandboxed processes on one
Linux machine. Layers, lowest first: core → sandbox, images → api → controllers, node,
proxy → cluster → cli (import-linter keeps them so).
"""

__version__ = "0.1.0"
