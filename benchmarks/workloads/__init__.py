"""One module per workload group; each returns plain JSON-able dicts."""
