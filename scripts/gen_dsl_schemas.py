"""Write each DSL version's schema as JSON next to the upstream YAML copy it is made from.

The workflow runner loads ``schema/<version>/workflow.json`` (``json.loads``: about 0.5 ms) rather
than parsing the upstream ``workflow.yaml`` on every cold start (about 250 ms with the pure-Python
YAML loader). The YAML files stay the unmodified upstream copies (see ``schema/PROVENANCE.md``);
the JSON files are generated from them and never edited by hand. A runner test checks that both
hold the same schema.

Usage: ``python scripts/gen_dsl_schemas.py [--check]``; exits 1 when a checked-in file was stale
(and, without ``--check``, rewrites it).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "packages" / "stigmer-runner-workflow" / "src" / "stigmer" / "runner" / "workflow" / "schema"


def render(yaml_path: Path) -> str:
    """The JSON text of one upstream YAML schema (key order kept, one line per value)."""
    loaded = YAML(typ="safe", pure=True).load(io.StringIO(yaml_path.read_text(encoding="utf-8")))
    return json.dumps(loaded, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for yaml_path in sorted(SCHEMAS.glob("*/workflow.yaml")):
        target = yaml_path.with_suffix(".json")
        text = render(yaml_path)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            stale.append(target.relative_to(ROOT))
            if not check:
                target.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if check else 'rewrote'}: {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
