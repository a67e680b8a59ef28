"""Generators and tools, run by hand or by `make`; not part of the installed package.

    python -m scripts.unasync            agent_runtime/client/_sync.py from _async.py
    python -m scripts.make_screenshots   the console's screenshots in docs/screenshots/

Run from the repository root.
"""
