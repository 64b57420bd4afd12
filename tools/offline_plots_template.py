"""Rebuild .dvc/plots/offline.html: DVC's plots page with vega, vega-lite and vega-embed inlined.

DVC's default page loads these three scripts from a CDN, so offline `dvc plots diff` renders nothing.
This takes the same versions DVC pins from the npm registry (`npm pack`) and inlines them.
Run: python tools/offline_plots_template.py   (needs npm; the result is committed)
"""

import subprocess
import tarfile
import tempfile
from pathlib import Path

LIBS = [
    ("vega", "5.20.2", "build/vega.min.js"),
    ("vega-lite", "5.2.0", "build/vega-lite.min.js"),
    ("vega-embed", "6.18.2", "build/vega-embed.min.js"),
]
OUT = Path(__file__).resolve().parent.parent / ".dvc" / "plots" / "offline.html"


def main() -> None:
    scripts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, member in LIBS:
            subprocess.run(["npm", "pack", f"{name}@{version}"], cwd=tmp, check=True, capture_output=True)
            with tarfile.open(Path(tmp) / f"{name}-{version}.tgz") as tar:
                source = tar.extractfile(f"package/{member}").read().decode()
            scripts.append(
                f"<!-- {name} {version} (BSD-3-Clause, University of Washington Interactive Data Lab), "
                f"from npm -->\n<script>{source}</script>"
            )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(f"""<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot (offline)</title>
    <!-- vega, vega-lite and vega-embed are inlined so that the page renders with no internet:
         DVC's default page loads them from a CDN. Rebuilt by tools/offline_plots_template.py. -->
{chr(10).join(scripts)}
    <style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
""")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
