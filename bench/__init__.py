"""`make bench`: miniorch's speed and memory figures, measured with the real CLI.

Every figure comes from real processes: `python -m miniorch up --detach` in a
private state dir on a free API port, pods created through the HTTPS API, traffic
through the LoadBalancer EXTERNAL-IP on loopback. `bench.run` prints a table
comparing each figure with its target and writes the JSON to bench/results/.
"""
