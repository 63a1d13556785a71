"""Import boundaries that keep processes lean and the layers honest."""

from __future__ import annotations

import subprocess
import sys

from webhook.settings import REPO_ROOT


def loaded_by(module: str) -> set[str]:
    """Top-level packages a fresh interpreter has loaded after importing `module`."""
    code = f"import sys, {module}; print(' '.join({{m.split('.')[0] for m in sys.modules}}))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_the_worker_loads_no_web_framework() -> None:
    """`hcc worker` runs jobs.py: no FastAPI, Starlette, Jinja or aiogram in that process."""
    assert loaded_by("webhook.jobs") & {"fastapi", "starlette", "jinja2", "aiogram"} == set()


def test_core_loads_no_io_framework() -> None:
    """core/ is the rules: it takes data in and returns decisions."""
    loaded = loaded_by("core.conversation, core.dossier, core.channels, core.forms")
    frameworks = {"fastapi", "starlette", "sqlalchemy", "sqlmodel", "httpx", "aiogram", "redis"}
    assert loaded & frameworks == set()
