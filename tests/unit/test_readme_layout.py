"""README's Layout section names every module of the three packages (it is the map a new
developer reads first; a module it does not name is a module nobody finds)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flows", "flows/steps", "flows/commands", "tasks", "dualengine")


def layout_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text[text.index("## Layout") : text.index("\n## ", text.index("## Layout") + 1)]


def test_every_module_is_named_in_the_layout():
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", layout_section()))
    missing = [
        f"{package}/{path.name}"
        for package in PACKAGES
        for path in sorted((ROOT / package).glob("*.py"))
        if path.stem not in ("__init__", "__main__") and path.stem not in words
    ]
    assert not missing, f"README Layout does not name: {missing}"


def test_the_layout_names_no_module_that_is_gone():
    named = re.findall(
        r"`((?:flows|tasks|dualengine)/[\w/]+\.py)`", (ROOT / "README.md").read_text()
    )
    assert [p for p in named if not (ROOT / p).exists()] == []
