"""Links between the notebooks and the docs resolve: the file exists and, for a heading anchor, so does the heading."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = {"data", "figures", "executed"}
LINK = re.compile(r"\]\((?!https?://|mailto:)([^)#\s]*)(?:#([^)\s]+))?\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", path.read_text(), re.M)}


def sources():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        yield path, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    for path in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        yield path, path.read_text()


def test_slug_is_githubs():
    assert slug("Debye–Waller factor") == "debyewaller-factor"
    assert slug("Melting point, Lindemann's rule, EMT, Langevin dynamics") == \
        "melting-point-lindemanns-rule-emt-langevin-dynamics"


def test_every_relative_link_and_anchor_resolves():
    checked, broken = 0, []
    for path, text in sources():
        for target, anchor in LINK.findall(text):
            if not target and not anchor:
                continue
            file = (path.parent / target).resolve() if target else path
            parts = file.relative_to(ROOT).parts
            if parts[0] in GENERATED or parts[:2] == ("benchmarks", "results"):
                continue  # written by a run (make run, a benchmark), not kept in the repository
            checked += 1
            if not file.exists():
                broken.append(f"{path.name}: {target} does not exist")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{path.name}: no heading #{anchor} in {file.name}")
    assert checked > 10 and not broken, broken


def test_glossary_defines_what_the_course_uses():
    glossary = anchors(ROOT / "docs" / "glossary.md")
    for term in ("class-codes", "spglib-and-symprec", "wyckoff-position", "strukturbericht-designation",
                 "ewald-sphere", "debyewaller-factor", "predictive-entropy-mutual-information-nats", "ari-and-nmi",
                 "deconvnet-guided-back-propagation-gradient--input"):
        assert term in glossary, term
