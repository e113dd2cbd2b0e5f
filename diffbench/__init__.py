"""diffbench: standard benchmarks of diffusion models.

The Python API (`diffbench.api`) is the path the CLI takes::

    import diffbench

    record = diffbench.score("ref/", "samples/", metrics=["fid", "kid"], protocol="torch-fidelity")
    records = diffbench.run("suites/demo.yaml", model="demo-sit", out="runs/demo")
    records = diffbench.load_results("runs/demo")

Importing diffbench loads nothing heavy: these names resolve on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "score": "diffbench.api",
    "run": "diffbench.api",
    "load_results": "diffbench.api",
    "compute_stats": "diffbench.api",
    "MetricSpec": "diffbench.metrics.spec",
    "register_metric": "diffbench.metrics.spec",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'diffbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
