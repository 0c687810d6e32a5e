"""Set the one version of every Stigmer distribution: ``python scripts/set_version.py 0.2.0``.

The root pyproject's ``[project].version`` is the version source. This rewrites it, every
``packages/*/pyproject.toml`` version, and every ``stigmer-*==`` pin between siblings (the
distributions move in lockstep), then refreshes uv.lock. ``tests-integration/test_layout.py``
fails CI when any of them disagree. Add the release's section to CHANGELOG.md by hand.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_VERSION = re.compile(r'^(version = ")[^"]+(")', re.MULTILINE)
_PIN = re.compile(r'("stigmer-[a-z-]+(?:\[[a-z,-]+\])?)==[^"]+(")')


def set_version(version: str) -> list[Path]:
    if not re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?", version):
        raise SystemExit(f"set_version: {version!r} is not a version like 1.2.3 or 1.2.3rc1")
    changed = []
    for path in [ROOT / "pyproject.toml", *sorted(ROOT.glob("packages/*/pyproject.toml"))]:
        text = path.read_text()
        new = _PIN.sub(rf"\g<1>=={version}\g<2>", _VERSION.sub(rf"\g<1>{version}\g<2>", text, count=1))
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/set_version.py VERSION", file=sys.stderr)
        return 2
    for path in set_version(argv[0]):
        print(f"updated {path.relative_to(ROOT)}")
    subprocess.run(["uv", "lock"], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
