"""The course book's pieces: notebooks made static, a clear refusal of unexecuted input, and a browser check that
finds each kind of fault when it is planted (so a clean report means something)."""
import json
import os

import pytest

from helpers import book


def test_widgets_become_a_note_and_their_state_is_dropped():
    nb = {"metadata": {"widgets": {"state": {}}}, "cells": [{"cell_type": "code", "source": "explorer()", "outputs": [
        {"output_type": "display_data", "metadata": {},
         "data": {book.WIDGET: {"model_id": "x"}, "text/plain": "VBox(children=...)"}},
        {"output_type": "stream", "name": "stdout", "text": "kept"}]}]}
    out = book.static_notebook(nb)
    assert "widgets" not in out["metadata"] and "widgets" in nb["metadata"]  # a copy: the input is unchanged
    assert out["cells"][0]["outputs"][0]["data"] == {"text/markdown": book.WIDGET_NOTE}
    assert out["cells"][0]["outputs"][1]["text"] == "kept"


def test_source_notebooks_or_a_partial_run_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="make run"):
        book.build(tmp_path, tmp_path / "site")
    (tmp_path / "01_data_generation.ipynb").write_text(json.dumps(
        {"cells": [{"cell_type": "code", "source": "", "outputs": [{"output_type": "stream"}]}], "metadata": {}}))
    with pytest.raises(FileNotFoundError, match="02_diffraction_fingerprints"):
        book.build(tmp_path, tmp_path / "site")


@pytest.mark.skipif(book.find_chromium() is None and not os.environ.get("CI"),
                    reason="no Chromium here (the system's chromium package)")
def test_the_browser_check_finds_each_planted_fault(tmp_path):
    site = tmp_path / "site"
    (site / "docs").mkdir(parents=True)
    (site / "ok.png").write_bytes(_png())
    (site / "index.html").write_text(
        '<html><body><h1 id="top">Book</h1><img src="ok.png"><a href="docs/page.html#here">fine</a>'
        '<a href="#top">self</a><a href="https://example.org/">another site</a></body></html>')
    (site / "docs" / "page.html").write_text(
        '<html><body><h2 id="here">Page</h2><img src="../missing.png"><a href="../nowhere.html">gone</a>'
        '<a href="../index.html#nothere">no anchor</a><script>undefinedFunction()</script></body></html>')
    report = book.check_site(site, {"index.html": tmp_path / "shot.png"})
    text = "\n".join(report["problems"])
    assert report["pages"] == 2 and report["images"] == 2 and (tmp_path / "shot.png").stat().st_size > 1000
    assert "picture did not load: ../missing.png" in text
    assert "link to a missing page" in text and "nowhere.html" in text
    assert "link to a missing anchor: index.html#nothere" in text
    assert "page error" in text and "undefinedFunction" in text
    assert not any(p.startswith("index.html") for p in report["problems"])  # the clean page has none


def _png() -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(0.5, 0.5))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
