"""partdl's benchmark suite: a fast local object server, contenders, a runner.

``python -m benchmarks.run`` (or ``make bench``) runs every scenario and writes
``docs/benchmarks.md`` and its chart. Nothing here is imported by the library or the
tests; benchmarks are measurements, never assertions.
"""
