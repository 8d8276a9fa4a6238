"""The tutorials' site (evo2kit.tutorial.docs), checked as a reader meets it: built from the smoke run
that test_notebooks.py checks (fixture ``smoke_run``; set EVO2KIT_SMOKE_RUN=build/smoke to reuse a
finished run), then every page, image and internal link read back from the HTML; the README's and
docs pages' own links and headings too. Then sites of small real runs (tiny notebooks through the
runner and papermill): a site shows one run, and marks what failed, was cut short or is out of range."""

from __future__ import annotations

import json
import os
import posixpath
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jupytext
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
    status, run_dir = smoke_run
    site = docs.build_site(run_dir, tmp_path / "site")
    assert site_problems(site) == []
    assert docs.read_run(run_dir).status() == status, "the site judges the run as the runner did"

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
    check_repository_pages(site)


FENCED = re.compile(r"^(```|~~~).*?^\1\s*$", re.M | re.S)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def check_repository_pages(site: Path) -> None:
    """Every repository page of the site (README, docs/*.md, the model card) is there with each of
    its headings, and each of its links to another such page is a link to that page (and #anchor)
    in the HTML; ``site_problems`` has already checked that every link's file and anchor exist."""
    pages = docs.PAGES | docs.docs_pages()
    assert set(docs.docs_pages()) == {f"docs/{p.name}" for p in (runner.ROOT / "docs").glob("*.md")}
    for repo_path, page in pages.items():
        html = site / page.replace(".md", ".html")
        assert html.is_file(), f"{repo_path} has no page on the site"
        soup = BeautifulSoup(html.read_text(), "html.parser")
        text = FENCED.sub("", (runner.ROOT / repo_path).read_text())
        headings = {" ".join(h.get_text().replace("¶", "").replace("’", "'").split())
                    for h in soup.find_all(re.compile("^h[1-6]$"))}
        for line in re.findall(r"^#{1,6} (.+)$", text, re.M):
            plain = " ".join(re.sub(r"[`*]", "", line).split())
            assert plain in headings, f"{repo_path}: heading {plain!r} not rendered (headings: {sorted(headings)})"
        hrefs = {a["href"] for a in soup.find_all("a", href=True)}
        for target in LINK.findall(text):
            path, _, anchor = target.partition("#")
            linked = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), path)) if path else repo_path
            if linked not in pages:
                continue
            want = "" if linked == repo_path else posixpath.relpath(
                pages[linked].replace(".md", ".html"), posixpath.dirname(page) or ".")
            if not anchor:
                assert want in hrefs, f"{repo_path}: the link to {target} is not <a href={want!r}> on its page"
                continue
            # Sphinx may point the link at its own id for the heading; the heading's GitHub-style id is there too.
            assert any(h.startswith(f"{want}#") for h in hrefs), f"{repo_path}: no link to {target} on its page"
            ids = {t["id"] for t in BeautifulSoup((site / pages[linked].replace(".md", ".html")).read_text(),
                                                  "html.parser").find_all(id=True)}
            assert anchor in ids, f"{repo_path}: {target}: no heading with that anchor on the site"


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
    assert docs.main(["--profile", "smoke", "--build", str(tmp_path)]) == 66
    err = capsys.readouterr().err
    assert "no executed notebooks in" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_links_of_repository_pages_point_at_the_site():
    assets: dict[str, str] = {}
    text = docs.rewrite_links("see [the card](evo2kit/weights/MODEL_CARD.md#data) and [a script](benchmarks/x.py)\n"
                              "```python\nx = y[0](z)\n```\n", "README.md", "", assets)
    assert "[the card](model_card.md#data)" in text and "and a script\n" in text and "y[0](z)" in text
    card = docs.rewrite_links("![curves](training_curves.png)", "evo2kit/weights/MODEL_CARD.md", "notebooks", assets)
    assert card == "![curves](../_assets/evo2kit/weights/training_curves.png)"
    assert assets == {"evo2kit/weights/training_curves.png": "_assets/evo2kit/weights/training_curves.png"}


def test_every_docs_page_is_on_the_site_in_reading_order():
    pages = list(docs.docs_pages())
    assert set(pages) == {f"docs/{p.name}" for p in (runner.ROOT / "docs").glob("*.md")}
    ordered = [f"docs/{n}.md" for n in docs.DOCS_ORDER if (runner.ROOT / "docs" / f"{n}.md").is_file()]
    assert pages[:len(ordered)] == ordered


def test_links_between_readme_and_docs_pages_point_at_their_pages():
    pages = docs.PAGES | {"docs/gpu.md": "docs/gpu.md", "docs/data.md": "docs/data.md"}
    readme = docs.rewrite_links("[GPU](docs/gpu.md#fp8), [03](notebooks/03_zero_shot.py), [08](notebooks/08_x.py)",
                                "README.md", "", {}, pages, notebooks={"03_zero_shot"})
    assert readme == "[GPU](docs/gpu.md#fp8), [03](notebooks/03_zero_shot.ipynb), 08", "08 is not on this site"
    gpu = docs.rewrite_links("[data](data.md#hashes) [home](../README.md) [card](../evo2kit/weights/MODEL_CARD.md) "
                             "[03](../notebooks/03_zero_shot.py) [bench](../benchmarks/README.md)",
                             "docs/gpu.md", "docs", {}, pages)
    assert gpu == ("[data](data.md#hashes) [home](../index.md) [card](../model_card.md) "
                   "[03](../notebooks/03_zero_shot.ipynb) bench")


# ----------------------------------------------------------------- a site shows one run, and marks what went wrong

A = ('# %% [markdown]\n# # 00 · a\n\n# %% tags=["parameters"]\na = 0.5\n\n'
     '# %%\nfrom evo2kit.tutorial.metrics import record_metrics\nrecord_metrics("00_a", {"a": a})\n')
# Cell 2 leaves a mark in the run's folder (so a test knows the notebook is running), then waits.
B = ('# %% [markdown]\n# # 01 · b\n\n# %% tags=["parameters"]\nb = 0.5\npause = 0.0\n\n# %%\nimport os, pathlib, time\n'
     'pathlib.Path(os.environ["EVO2KIT_OUTPUT_DIR"], "01_b.started").touch()\ntime.sleep(pause)\n\n'
     '# %%\nassert b >= 0, "b must not be negative"\nfrom evo2kit.tutorial.metrics import record_metrics\n'
     'record_metrics("01_b", {"b": b})\n')
RANGES = ("00_a:\n  p:\n    evo2kit-tiny:\n      a: {min: 0.0, max: 1.0, provenance: test}\n"
          "01_b:\n  p:\n    evo2kit-tiny:\n      b: {min: 0.0, max: 1.0, provenance: test}\n")


@pytest.fixture
def tiny_notebooks(tmp_path, monkeypatch):
    """Two tiny notebooks (00_a records a, 01_b records b after a pause), their profile p and ranges
    (a and b in [0, 1]); docs judges the metrics of an unfinished run by these ranges too."""
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    for stem, body in {"00_a": A, "01_b": B}.items():
        (nbdir / f"{stem}.py").write_text(body)
        jupytext.write(jupytext.read(nbdir / f"{stem}.py"), nbdir / f"{stem}.ipynb")
    (nbdir / "profiles.yml").write_text("profiles:\n  p: {}\n")
    (nbdir / "expected_results.yml").write_text(RANGES)
    monkeypatch.setattr(docs, "load_expected", lambda: runner.load_expected(nbdir / "expected_results.yml"))
    return nbdir


def publish(build: Path, capsys) -> tuple[int, str, Path]:
    """(exit status, stderr, site folder) of ``python -m evo2kit.tutorial.docs`` on BUILD/p."""
    capsys.readouterr()
    status = docs.main(["--profile", "p", "--build", str(build)])
    return status, capsys.readouterr().err, build / "site" / "p"


def page_text(site: Path, name: str) -> str:
    return " ".join(BeautifulSoup((site / name).read_text(), "html.parser").get_text().split())


def table_rows(site: Path, name: str) -> list[list[str]]:
    soup = BeautifulSoup((site / name).read_text(), "html.parser")
    return [[td.get_text(strip=True) for td in tr.find_all("td")] for tr in soup.select("table tr")]


@pytest.mark.slow
def test_a_site_never_mixes_runs(tiny_notebooks, tmp_path, capsys):
    """The issue's case: a full run whose 01 metric failed, then a run of 00 alone in the same folder.
    The site of the second run shows 00 only, beside a metrics page of that run, and says it left 01 out;
    the site of the first run marks 01's page and exits 2."""
    build = tmp_path / "build"
    assert runner.run("p", out=build, overrides={"b": 2.0}, notebooks_dir=tiny_notebooks) == 2
    status, err, site = publish(build, capsys)
    assert status == 2 and "01_b: b = 2, out of its range [0, 1]" in err
    b_page = page_text(site, "notebooks/01_b.html")
    assert "Out of its expected range in this run: b = 2, out of its range [0, 1]" in b_page
    assert "Out of its expected range" not in page_text(site, "notebooks/00_a.html")
    assert site_problems(site) == []

    assert runner.run("p", ["00"], out=build, notebooks_dir=tiny_notebooks) == 0
    assert (build / "p" / "01_b.ipynb").is_file(), "the first run's 01 is still in the folder"
    status, err, site = publish(build, capsys)
    assert status == 0, err
    assert not (site / "notebooks" / "01_b.html").exists(), "a notebook of the earlier run was published"
    assert "left out" in err and "01_b.ipynb: not part of the run started" in err
    metrics = page_text(site, "metrics.html")
    assert "1 pass, 0 FAIL" in metrics and "01_b.ipynb, not part of the run" in metrics
    assert ["00_a", "ok"] == table_rows(site, "metrics.html")[-1][:2]
    assert "not a clean one" not in page_text(site, "index.html")
    assert site_problems(site) == []


@pytest.mark.slow
def test_a_killed_or_failed_notebook_is_marked_on_its_page_and_in_the_exit_status(tiny_notebooks, tmp_path, capsys):
    """A run killed (SIGKILL, runner and kernel) while 01 sleeps in its second cell: the site shows 00,
    and 01 with a warning that only 2 of its 4 code cells (papermill's injected parameters cell
    included) finished, and exits 1; metrics.json of an earlier
    run in the folder is not taken for this run's. Then a run whose 01 raises: its page says which cell."""
    build = tmp_path / "build"
    assert runner.run("p", out=build, notebooks_dir=tiny_notebooks) == 0  # a clean earlier run: its metrics.json stays
    (build / "p" / "01_b.started").unlink()
    cmd = [sys.executable, "-m", "evo2kit.tutorial.runner", "--profile", "p", "--out", str(build),
           "--notebooks-dir", str(tiny_notebooks), "--set", "pause=600"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (build / "p" / "01_b.started").exists():
            assert proc.poll() is None and time.time() < deadline, "the run ended, or 01 never started"
            time.sleep(0.1)
        time.sleep(1)  # papermill saved the notebook as the cell started; nothing more comes
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernel, as a kill -9 of the job would
        proc.wait()

    status, err, site = publish(build, capsys)
    assert status == 1, err
    assert "wrote no metrics summary of its own" in err and "01_b: cut short" in err
    b = page_text(site, "notebooks/01_b.html")
    assert "This notebook did not run to its end: its execution stopped after 2 of 4 code cells" in b
    assert "did not run to its end" not in page_text(site, "notebooks/00_a.html")
    assert "wrote no metrics.json of its own" in page_text(site, "metrics.html")
    states = {r[0]: r[1] for r in table_rows(site, "metrics.html") if len(r) == 4}
    assert states == {"00_a": "ok", "01_b": "cut short"}
    assert ["pass", "00_a", "a", "0.5", "[0, 1]"] in table_rows(site, "metrics.html"), "00's metric, judged"
    assert "not a clean one" in page_text(site, "index.html")
    assert site_problems(site) == []

    assert runner.run("p", out=build, overrides={"b": -1.0}, notebooks_dir=tiny_notebooks) == 1
    status, err, site = publish(build, capsys)
    assert status == 1 and "01_b: failed (code cell 4 of 4 raised AssertionError: b must not be negative)" in err
    assert "This notebook failed in this run: code cell 4 of 4 raised AssertionError" in page_text(
        site, "notebooks/01_b.html")


def write_run(folder: Path, notebooks: dict[str, str]) -> Path:
    """A run folder as the runner leaves it: run.json (planned notebooks, start) and the given files."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"profile": folder.name, "notebooks": list(notebooks),
                                                 "started": "2026-12-07T10:00:00+00:00"}))
    for stem, text in notebooks.items():
        (folder / f"{stem}.ipynb").write_text(text)
    return folder


def test_a_truncated_notebook_is_named_in_one_sentence(tmp_path, capsys):
    whole = json.dumps({"cells": [], "metadata": {"papermill": {"start_time": "2026-12-07T10:00:01+00:00"}},
                        "nbformat": 4, "nbformat_minor": 5}, indent=1)
    run_dir = write_run(tmp_path / "build" / "p", {"00_a": whole[:len(whole) // 2]})
    assert docs.main(["--profile", "p", "--build", str(tmp_path / "build")]) == 65
    err = capsys.readouterr().err
    assert f"{run_dir / '00_a.ipynb'} is not a readable notebook" in err and "run that notebook again" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_out_that_is_not_a_folder_for_the_site_is_one_sentence_and_nothing_is_deleted(tmp_path, capsys):
    write_run(tmp_path / "build" / "p", {"00_a": "{}"})
    (tmp_path / "a_file").write_text("keep me")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "mine.txt").write_text("keep me too")
    for out, says in [(tmp_path / "a_file", "is a file: name a folder"),
                      (tmp_path / "a_file" / "site", "which is a file: name a folder"),
                      (tmp_path / "results", "holds files that are not a site built here"),
                      (tmp_path / "build", "holds the run")]:
        assert docs.main(["--profile", "p", "--build", str(tmp_path / "build"), "--out", str(out)]) == 64, out
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "a_file").read_text() == "keep me"
    assert (tmp_path / "results" / "mine.txt").read_text() == "keep me too"
    assert (tmp_path / "build" / "p" / "run.json").is_file()


def test_a_run_without_its_record_is_refused_in_one_sentence(tmp_path, capsys):
    run_dir = write_run(tmp_path / "build" / "p", {"00_a": "{}"})
    (run_dir / "run.json").write_text(json.dumps({"profile": "p", "seed": 0}))  # an older runner's record
    assert docs.main(["--profile", "p", "--build", str(tmp_path / "build")]) == 65
    assert "does not say when the run started" in capsys.readouterr().err
    (run_dir / "run.json").unlink()
    assert docs.main(["--profile", "p", "--build", str(tmp_path / "build")]) == 66
    assert "has no run.json" in capsys.readouterr().err
