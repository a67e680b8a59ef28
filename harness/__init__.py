"""The harness the tests and the benchmarks share: free ports, uvicorn servers, a
private PgBouncer, the HTTP/1.1 load client, latency summaries, uvicorn's workers
seen from /proc, headless Chromium.

Not part of the installed package; imported from the repository root like `tests`
and `benchmarks`. Nothing here imports pytest (the tests' fixtures wrap it), and
`harness.pgbouncer` only the standard library (`.ci/run` runs it before the
virtualenv exists).
"""
