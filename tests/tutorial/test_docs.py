"""The tutorials' site (evo2kit.docs), checked as a reader meets it: built from the smoke run that
test_notebooks.py checks (fixture ``smoke_run``; set EVO2KIT_SMOKE_RUN=build/smoke to reuse a
finished run), then every page, image and internal link read back from the HTML."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from bs4 import BeautifulSoup

from evo2kit.tutorial import docs, runner

# Where each tag names another file; an <a> may point off the site, nothing that renders a page may.
REFERENCES = {"a": "href", "img": "src", "script": "src", "link": "href", "source": "src", "iframe": "src"}


def site_problems(site: Path) -> list[str]:
    """Every broken reference in the HTML pages under ``site``: a relative link, image, script or
    stylesheet whose file (or #anchor) does not exist, and anything but a link fetched from the network."""
    problems, ids = [], {}
    pages = sorted(site.rglob("*.html"))
    soups = {page: BeautifulSoup(page.read_text(), "html.parser") for page in pages}
    for page, soup in soups.items():
        ids[page] = {tag["id"] for tag in soup.find_all(id=True)}
    for page, soup in soups.items():
        for tag_name, attr in REFERENCES.items():
            for tag in soup.find_all(tag_name, attrs={attr: True}):
                ref = tag[attr]
                url = urlsplit(ref)
                where = f"{page.relative_to(site)}: <{tag_name} {attr}={ref!r}>"
                if url.scheme or url.netloc:
                    if tag_name != "a" and url.scheme != "data":
                        problems.append(f"{where} is fetched from the network")
                    continue
                target = (page.parent / unquote(url.path)).resolve() if url.path else page
                if target.is_dir():
                    target = target / "index.html"
                if not target.is_file():
                    problems.append(f"{where}: no such file")
                elif url.fragment and target in ids and unquote(url.fragment) not in ids[target]:
                    problems.append(f"{where}: no element with id {url.fragment!r}")
    return problems


@pytest.mark.slow
def test_site_of_the_smoke_run(smoke_run, tmp_path):
    _, run_dir = smoke_run
    site = docs.build_site(run_dir, tmp_path / "site")
    assert site_problems(site) == []

    profile = json.loads((run_dir / "run.json").read_text())["profile"]
    figures = 0
    for stem in runner.notebook_sources():
        page = site / "notebooks" / f"{stem}.html"
        assert page.is_file(), f"no page for {stem}"
        soup = BeautifulSoup(page.read_text(), "html.parser")
        note = soup.find(string=lambda s: s and "Executed by" in s).find_parent("div")
        text = note.get_text(" ", strip=True)
        assert f"--profile {profile}" in text and "model" in text and "started" in text, text
        figures += len(soup.select("img[src^='../_images/']"))
    assert figures > 0, "no figure of the executed notebooks is shown"

    metrics = BeautifulSoup((site / "metrics.html").read_text(), "html.parser")
    rows = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    cells = [[td.get_text(strip=True) for td in tr.find_all("td")] for tr in metrics.select("table tr")]
    shown = {(c[1], c[2], c[0]) for c in cells if len(c) == 5}
    assert {(r["notebook"], r["metric"], r["status"]) for r in rows} <= shown

    home = BeautifulSoup((site / "index.html").read_text(), "html.parser")
    assert home.find("a", href="model_card.html") and home.find("a", href="notebooks/03_zero_shot.html")


def test_the_check_finds_broken_references(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "ok.html").write_text('<p id="here">x</p><a href="https://example.org/">off site, fine</a>')
    (tmp_path / "sub" / "page.html").write_text(
        '<a href="../ok.html#here">fine</a><a href="../ok.html#gone">x</a><img src="missing.png">'
        '<script src="https://cdn.example.org/x.js"></script><a href="#top">x</a>')
    problems = "\n".join(site_problems(tmp_path))
    assert "id 'gone'" in problems and "missing.png" in problems and "fetched from the network" in problems
    assert "#top" in problems and "ok.html#here" not in problems and "example.org/'" not in problems


def test_missing_run_folder_is_one_sentence(tmp_path, capsys):
    assert docs.main(["--profile", "smoke", "--build", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "No executed notebooks" in err and "Traceback" not in err


def test_links_of_repository_pages_point_at_the_site():
    assets: dict[str, str] = {}
    text = docs.rewrite_links("see [the card](evo2kit/weights/MODEL_CARD.md#data) and [a script](benchmarks/x.py)\n"
                              "```python\nx = y[0](z)\n```\n", "README.md", "", assets)
    assert "[the card](model_card.md#data)" in text and "and a script\n" in text and "y[0](z)" in text
    card = docs.rewrite_links("![curves](training_curves.png)", "evo2kit/weights/MODEL_CARD.md", "notebooks", assets)
    assert card == "![curves](../_assets/evo2kit/weights/training_curves.png)"
    assert assets == {"evo2kit/weights/training_curves.png": "_assets/evo2kit/weights/training_curves.png"}
