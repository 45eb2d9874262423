"""The API: object kinds, the store with watch, the registry (defaulting, validation,
admission) and the HTTPS server that kubectl, the Python client and the CLI talk to.
"""
