"""The course book: the executed series, the start page, the glossary, the science, the solutions, the results page
and REPORT.md as one static website (``make book``), from the last run of the series.

Built with Sphinx and MyST-NB. MyST-NB renders each notebook with the outputs it was executed with (it runs
nothing), reads the project's Markdown as it is (heading anchors included, so the notebooks' links to the glossary
resolve), and installs from PyPI like the rest of the project; Jupyter Book 2 would add a Node.js tool chain that
the project does not otherwise need. The site's pages keep the repository's layout (``notebooks/``, ``docs/``,
``figures/``), so every relative link of the notebooks and docs works in the book as in the repository.

``python -m helpers.book [--executed DIR] [--out DIR]``: executed notebooks from ``executed/`` (``make run``) by
default; the site is written to ``book/`` (git-ignored), first to a temporary folder and then renamed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import config

#: The docs pages of the book, in reading order after the start page.
DOCS = ("start.md", "glossary.md", "science.md", "solutions.md", "results.md", "scaling.md")
CONF = '''
project = "Crystal fingerprints: a course"
extensions = ["myst_nb"]
nb_execution_mode = "off"          # the notebooks' stored outputs, as the last run left them
myst_heading_anchors = 3           # "glossary.md#ewald-sphere" links to the heading
myst_enable_extensions = ["dollarmath", "amsmath"]
suppress_warnings = ["mystnb.unknown_mime_type", "misc.highlighting_failure"]
html_theme = "alabaster"
html_theme_options = {"page_width": "1180px", "sidebar_width": "230px"}
exclude_patterns = ["_build"]
'''


def default_out() -> Path:
    return config.ROOT / "book"


def _check_executed(executed: Path) -> list:
    notebooks = sorted(executed.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no executed notebooks in {executed}: run the series first (`make run`), or pass "
                                "--executed with the folder of a run")
    from .series import notebooks as series_notebooks

    missing = sorted({p.name for p in series_notebooks()} - {p.name for p in notebooks})
    if missing:
        raise FileNotFoundError(f"{executed} lacks the executed {', '.join(missing)}: run the whole series "
                                "(`make run`) before the book")
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        if not any(c.get("outputs") for c in cells if c["cell_type"] == "code"):
            raise ValueError(f"{path.name} in {executed} has no outputs: it is a source notebook, not an executed "
                             "one; pass the executed/ folder of a run")
    return notebooks


WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("*An interactive explorer: open this notebook in JupyterLab and run it to use it (a static page "
               "cannot run Python).*")


def static_notebook(nb: dict) -> dict:
    """The executed notebook as a static page shows it: each live widget (an explorer) replaced by a note that says
    where to use it, and the widgets' saved state dropped, so that the page needs no widget scripts from the web."""
    nb = json.loads(json.dumps(nb))
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        for k, out in enumerate(cell.get("outputs", [])):
            if WIDGET in out.get("data", {}):
                cell["outputs"][k] = {"output_type": "display_data", "metadata": {},
                                      "data": {"text/markdown": WIDGET_NOTE}}
    return nb


def _favicon(path: Path) -> None:
    """A small picture of a diffraction ring for the browser tab (and no missing favicon.ico)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    y, x = np.mgrid[-1:1:32j, -1:1:32j]
    r = np.hypot(x, y)
    fig = plt.figure(figsize=(0.32, 0.32), dpi=100)
    fig.figimage(np.exp(-((r - 0.6) / 0.12) ** 2) * (np.cos(6 * np.arctan2(y, x)) + 1.2), cmap="magma")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def source_tree(executed: Path, figures: Path, docs: Path, into: Path) -> Path:
    """Lay out the book's source in ``into``: conf.py, index.md, notebooks/ (executed), docs/, figures/REPORT.md and
    its pictures."""
    notebooks = _check_executed(executed)
    (into / "notebooks").mkdir(parents=True)
    (into / "docs").mkdir()
    (into / "figures").mkdir()
    for path in notebooks:
        (into / "notebooks" / path.name).write_text(json.dumps(static_notebook(json.loads(path.read_text())),
                                                               indent=1))
    pages = [name for name in DOCS if (docs / name).exists()]
    for name in pages:
        shutil.copy2(docs / name, into / "docs" / name)
    report = figures / "REPORT.md"
    if report.exists():
        shutil.copy2(report, into / "figures" / "REPORT.md")
        for picture in figures.glob("*.png"):
            shutil.copy2(picture, into / "figures" / picture.name)
    (into / "_static").mkdir()
    _favicon(into / "_static" / "favicon.png")
    (into / "conf.py").write_text(CONF + 'html_favicon = "_static/favicon.png"\nhtml_static_path = ["_static"]\n')
    toc = ([f"docs/{Path(name).stem}" for name in pages[:1]] + [f"notebooks/{p.stem}" for p in notebooks]
           + [f"docs/{Path(name).stem}" for name in pages[1:]] + (["figures/REPORT"] if report.exists() else []))
    (into / "index.md").write_text("# Crystal fingerprints: a course\n\n"
                                   "Classifying crystal structures from two-dimensional diffraction fingerprints "
                                   "(Ziletti et al., Nat. Commun. 2018), and past the paper. Begin with the start page.\n\n"
                                   "```{toctree}\n:maxdepth: 1\n\n" + "\n".join(toc) + "\n```\n")
    return into


def build(executed: Path | None = None, out: Path | None = None, figures: Path | None = None,
          docs: Path | None = None, quiet: bool = True) -> Path:
    """Build the site from the executed notebooks in ``executed`` (default: the last run's) into ``out``; returns
    the path of its index.html. Sphinx's warnings are errors, so a broken link or a missing picture fails the
    build instead of shipping."""
    executed = Path(executed or config.executed_dir())
    out = Path(out or default_out())
    figures = Path(figures or config.figures_dir())
    docs = Path(docs or config.ROOT / "docs")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".book-", dir=out.parent) as scratch:
        source = source_tree(executed, figures, docs, Path(scratch) / "source")
        html = Path(scratch) / "html"
        command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-j", "1",
                   *(["-q"] if quiet else []), str(source), str(html)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"the book did not build (sphinx exit {done.returncode}):\n{done.stderr[-4000:]}")
        if out.exists():
            shutil.rmtree(out)
        html.rename(out)
    return out / "index.html"


def find_chromium() -> str | None:
    """The path of a Chromium on this machine, or None."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                                 "google-chrome-stable"))), None)


def chromium() -> str:
    """The path of a Chromium the browser check can drive; a clear error naming the fix when there is none."""
    path = find_chromium()
    if path:
        return path
    raise FileNotFoundError("no Chromium on this machine: install it from the system's packages "
                            "(Debian/Ubuntu: `apt-get install chromium`); browser builds are not downloaded")


def _serve(site: Path) -> tuple:
    """(a quiet local HTTP server of ``site`` running in a thread, its base URL); ``server.shutdown()`` stops it."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def check_site(site: Path, screenshots: dict | None = None, timeout_ms: int = 60_000) -> dict:
    """Open every page of the built site in headless Chromium (Playwright driving the system's Chromium) over a
    local HTTP server, and report what a reader would hit: console errors and page errors, pictures that did not
    load, and internal links (with their #anchors) that lead nowhere. Requests to other hosts (the MathJax that
    Sphinx loads from a CDN for pages with formulas) are not made, since the check runs without the internet: they
    are listed under "external", and their failures are not counted as the site's. ``screenshots``: {page path
    relative to the site: PNG path} of pages to photograph (full page). Returns {"pages": n, "images": n, "links": n,
    "problems": [...], "external": [...]}."""
    from playwright.sync_api import sync_playwright

    site = Path(site).resolve()
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if "_static" not in p.parts)
    server, base = _serve(site)
    problems, images, links, anchors, external = [], 0, [], {}, set()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def offline(route):  # another host: not fetched (the check runs without the internet); listed
                external.add(route.request.url)
                route.abort()

            page.route(lambda url: not url.startswith(base), offline)
            current = {"name": ""}
            page.on("console", lambda m: m.type == "error" and m.location.get("url") not in external and problems.append(
                f"{current['name']}: console error: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"{current['name']}: page error: {e}"))
            for name in pages:
                current["name"] = name
                response = page.goto(base + name, wait_until="load", timeout=timeout_ms)
                if response is None or not response.ok:
                    problems.append(f"{name}: HTTP {None if response is None else response.status}")
                    continue
                found = page.evaluate("""() => ({
                    broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
                                 .map(i => i.getAttribute('src')),
                    images: document.images.length,
                    ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
                    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href)})""")
                images += found["images"]
                problems += [f"{name}: picture did not load: {src}" for src in found["broken"]]
                anchors[name] = set(found["ids"])
                links += [(name, href) for href in found["links"]]
                if screenshots and name in screenshots:
                    Path(screenshots[name]).parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(screenshots[name]), full_page=True)
            browser.close()
    finally:
        server.shutdown()
    internal = [(name, href) for name, href in links if href.startswith(base)]  # other sites: not ours to check
    problems += _dead_links(site, base, internal, anchors)
    return {"pages": len(pages), "images": images, "links": len(internal), "problems": problems,
            "external": sorted(external)}


def _dead_links(site: Path, base: str, links: list, anchors: dict) -> list:
    """Problems of the site's own links [(page, href)]: a page that does not exist, or an #anchor that its page
    (``anchors``: {page: ids on it}) does not have."""
    from urllib.parse import unquote, urldefrag, urljoin, urlparse

    problems = []
    for name, href in links:
        target, fragment = urldefrag(href)
        path = unquote(urlparse(target).path)[1:] or "index.html"
        if path.endswith("/"):
            path += "index.html"
        if not (site / path).exists():
            problems.append(f"{name}: link to a missing page: {urljoin(name, href[len(base):])}")
        elif fragment and path in anchors and unquote(fragment) not in anchors[path]:
            problems.append(f"{name}: link to a missing anchor: {path}#{fragment}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executed", type=Path, help="folder of executed notebooks (default: executed/)")
    parser.add_argument("--out", type=Path, help="where the site goes (default: book/)")
    parser.add_argument("--no-check", action="store_true", help="build only, without the browser check")
    args = parser.parse_args(argv)
    index = build(args.executed, args.out)
    print(f"wrote the book: {index}")
    if args.no_check:
        return 0
    shots = {"docs/start.html": config.figures_dir() / "book_start.png",
             "notebooks/03_cnn_training.html": config.figures_dir() / "book_03.png"}
    report = check_site(index.parent, shots)
    print(f"checked in Chromium: {report['pages']} pages, {report['images']} pictures, {report['links']} internal "
          f"links; screenshots {', '.join(config.shown(p) for p in shots.values())}")
    for problem in report["problems"]:
        print("  problem:", problem)
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
