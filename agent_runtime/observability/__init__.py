"""Metrics (`metrics`: every Prometheus metric, `GET /metrics`) and logs (`logs`: request
ids in every line, text or JSON lines)."""
