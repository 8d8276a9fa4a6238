"""Build the tutorials' static site from a finished run: ``python -m evo2kit.tutorial.docs --profile smoke``.

The site (``build/site/<profile>/``) has the README as its home page, the bundled model's card,
one page per executed notebook of ``build/<profile>/`` (outputs and figures inline, with the
model, profile and time that produced it) and the run's metrics against the expected ranges.

Tool: Sphinx with MyST-NB (renders the executed notebooks without running them) and the Furo
theme; why these, in the README ("Reading the tutorials"). The site needs no network.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from evo2kit.tutorial.runner import ROOT, model_label, notebook_sources

# Repository files that become pages of the site: their links to each other keep working.
PAGES = {"README.md": "index.md", "evo2kit/weights/MODEL_CARD.md": "model_card.md"}
MARKDOWN_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.M | re.S)

CONF_PY = """\
project = "evo2kit"
html_title = {title!r}
extensions = ["myst_nb"]
html_theme = "furo"
nb_execution_mode = "off"  # show the outputs the runner recorded; never re-run a notebook here
nb_render_markdown_format = "myst"  # Markdown outputs (00 shows the model card) with their tables
nb_ipywidgets_js = {{}}  # no widget scripts from a CDN: the site must render offline
myst_heading_anchors = 3  # links to a heading, such as the README's (#reading-the-tutorials-...), resolve
html_show_sourcelink = False
html_copy_source = False
"""


def rewrite_links(text: str, repo_path: str, page_dir: str, assets: dict[str, str]) -> str:
    """Point the relative links of ``text`` (the repository file ``repo_path``, shown on a page in
    the site's folder ``page_dir``) at the site: pages of ``PAGES`` and notebooks at their pages,
    images at copies (``assets``: repo path -> site path, filled here); links to files that are not
    on the site keep only their text (the site has no copy to open)."""
    here = posixpath.dirname(repo_path)

    def site_target(match: re.Match) -> str:
        bang, label, target = match.groups()
        path, _, anchor = target.partition("#")
        if re.match(r"^[a-z][a-z0-9+.-]*:", path) or not path:  # a URL, or an anchor on this page
            return match.group(0)
        repo_target = posixpath.normpath(posixpath.join(here, path))
        if bang:
            assets[repo_target] = posixpath.join("_assets", repo_target)
            site = assets[repo_target]
        elif repo_target in PAGES:
            site = PAGES[repo_target]
        elif repo_target.startswith("notebooks/") and repo_target.endswith((".py", ".ipynb")):
            site = "notebooks/" + posixpath.basename(repo_target).rsplit(".", 1)[0] + ".ipynb"
        else:
            return label
        site = posixpath.relpath(site, page_dir or ".")
        return f"{bang}[{label}]({site}{'#' + anchor if anchor else ''})"

    # Code blocks are left alone: Python indexing such as `x[0](y)` is not a link.
    pieces, last = [], 0
    for fence in FENCE.finditer(text):
        pieces += [MARKDOWN_LINK.sub(site_target, text[last:fence.start()]), fence.group(0)]
        last = fence.end()
    return "".join(pieces + [MARKDOWN_LINK.sub(site_target, text[last:])])


def provenance(nb, settings: dict) -> str:
    """One paragraph saying which model, profile, seed and machine produced the executed notebook, and when."""
    pm = nb.metadata.get("papermill", {})
    params = pm.get("parameters", {})
    model = model_label(params)
    start = datetime.fromisoformat(pm["start_time"]).strftime("%Y-%m-%d %H:%M UTC") if pm.get("start_time") else "?"
    duration = f"{pm['duration']:.0f} s" if pm.get("duration") is not None else "?"
    failed = f" **It failed: {pm['exception']}**." if pm.get("exception") else ""
    return (f"```{{note}}\nExecuted by `python -m evo2kit.tutorial.runner --profile {settings.get('profile', '?')}` "
            f"with model `{model}`, seed {params.get('seed', settings.get('seed', '?'))}, "
            f"{settings.get('threads', '?')} thread(s) on {settings.get('cpu', '?')} (torch "
            f"{settings.get('torch', '?')}); started {start}, took {duration} "
            f"(papermill {pm.get('version', '?')}).{failed}\n```")


def metrics_page(run_dir: Path, settings: dict) -> str:
    """The run's metrics (``metrics.json``) against the expected ranges, status first so that it
    stays in view on a narrow page, then each notebook's time."""
    summary = json.loads((run_dir / "metrics.json").read_text())
    rows, timings = summary["metrics"], summary.get("timings", [])
    fmt = lambda v: "" if v is None else f"{v:.4g}"  # noqa: E731
    counts = ", ".join(f"{sum(r['status'] == s for r in rows)} {s}" for s in ("pass", "FAIL", "MISSING", "unchecked"))
    models = ", ".join(sorted({f"`{r['model']}`" for r in rows}))
    run_line = ", ".join(f"{k} {settings[k]}" for k in ("seed", "threads", "cpu", "torch", "python") if k in settings)
    lines = [f"# Metrics of profile `{settings['profile']}`", "",
             f"Each metric the notebooks recorded, against its range in `notebooks/expected_results.yml`: {counts}. "
             f"Model(s): {models}. Run: {run_line}.", "",
             "| status | notebook | metric | value | expected |", "|---|---|---|---|---|"]
    for r in rows:
        status = r["status"] if r["status"] in ("pass", "unchecked") else f"**{r['status']}**"
        expected = "" if r["min"] is None else f"[{fmt(r['min'])}, {fmt(r['max'])}]"
        lines.append(f"| {status} | {r['notebook']} | {r['metric']} | {fmt(r['value'])} | {expected} |")
    if timings:
        lines += ["", "| notebook | run | wall (s) | CPU (s) |", "|---|---|---|---|"]
        lines += [f"| {t['notebook']} | {t['status']} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} |" for t in timings]
    return "\n".join(lines) + "\n"


def assemble(run_dir: Path, src: Path) -> list[str]:
    """Write the Sphinx sources for ``run_dir`` into ``src``; returns the notebook stems on the site."""
    import nbformat

    settings = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    settings.setdefault("profile", run_dir.name)
    stems = [s for s in notebook_sources() if (run_dir / f"{s}.ipynb").is_file()]
    pages = {repo_path: (ROOT / repo_path).read_text() for repo_path in PAGES}
    assets: dict[str, str] = {}
    (src / "notebooks").mkdir(parents=True)
    for stem in stems:
        nb = nbformat.read(run_dir / f"{stem}.ipynb", as_version=4)
        for output in (o for cell in nb.cells for o in cell.get("outputs", [])):
            shown = output.get("data", {}).get("text/markdown")
            for repo_path, text in pages.items():  # a notebook showing one of our pages (00: the model card)
                if shown and shown.strip() == text.strip():
                    output["data"]["text/markdown"] = rewrite_links(shown, repo_path, "notebooks", assets)
        # The note goes under the notebook's title cell, so the title stays the page's title.
        at = 1 if nb.cells and nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("#") else 0
        nb.cells.insert(at, nbformat.v4.new_markdown_cell(provenance(nb, settings)))
        nbformat.write(nb, src / "notebooks" / f"{stem}.ipynb")

    for repo_path, page in PAGES.items():
        text = rewrite_links(pages[repo_path], repo_path, posixpath.dirname(page), assets)
        if page == "index.md":
            text += ("\n\n```{toctree}\n:caption: Tutorials, as executed\n:maxdepth: 1\n\n"
                     + "\n".join(f"notebooks/{s}" for s in stems) + "\n```\n\n"
                     "```{toctree}\n:caption: Reference\n:maxdepth: 1\n\nmodel_card\nmetrics\n```\n")
        (src / page).write_text(text)
    for repo_path, site_path in assets.items():
        (src / site_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / repo_path, src / site_path)
    (src / "metrics.md").write_text(metrics_page(run_dir, settings) if (run_dir / "metrics.json").is_file()
                                    else "# Metrics\n\nThis run wrote no `metrics.json` (it did not finish).\n")
    (src / "conf.py").write_text(CONF_PY.format(title=f"evo2kit tutorials: profile {settings['profile']}"))
    return stems


def build_site(run_dir: Path, out: Path) -> Path:
    """Build the site of the run in ``run_dir`` (a runner output folder) into ``out``; returns ``out``."""
    from sphinx.cmd.build import build_main

    run_dir, out = Path(run_dir), Path(out)
    if not any(run_dir.glob("*.ipynb")):
        raise FileNotFoundError(f"{run_dir} holds no executed notebook")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        assemble(run_dir, src)
        shutil.rmtree(out, ignore_errors=True)  # pages of notebooks no longer in the run must go
        status = build_main(["-b", "html", "-q", "-d", str(Path(tmp) / "doctrees"), str(src), str(out)])
    if status != 0:
        raise RuntimeError(f"sphinx-build exited with status {status} (its messages are above)")
    return out


def check_in_browser(site: Path, screenshots: Path, browser: str | None = None) -> list[str]:
    """Open every page of ``site`` in headless Chromium (through Playwright, driving the system's
    browser: no browser download) and save a full-page screenshot of each under ``screenshots``;
    returns the console errors, uncaught exceptions and failed loads, one line each."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    browser = browser or next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if not browser:
        raise RuntimeError("no Chromium found (Debian: apt-get install chromium)")
    shutil.rmtree(screenshots, ignore_errors=True)
    screenshots.mkdir(parents=True)
    problems = []
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=browser)
        except PlaywrightError as e:
            raise RuntimeError(f"{browser} did not start: {str(e).splitlines()[0]}") from e
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        where = ""
        page.on("console", lambda m: m.type == "error" and problems.append(f"{where}: console: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"{where}: uncaught: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"{where}: failed to load {r.url} ({r.failure})"))
        for html in sorted(site.rglob("*.html")):
            where = str(html.relative_to(site))
            page.goto(html.resolve().as_uri(), wait_until="load")
            page.screenshot(path=screenshots / (where.replace("/", "_").removesuffix(".html") + ".png"), full_page=True)
        chromium.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu", help="the run to publish: BUILD/<profile> (default: cpu)")
    ap.add_argument("--build", default=str(ROOT / "build"), help="the runner's output root (default: build)")
    ap.add_argument("--out", default=None, help="where the site goes (default: BUILD/site/<profile>)")
    ap.add_argument("--check-in-browser", action="store_true",
                    help="then open every page in headless Chromium, screenshot it into BUILD/site/screenshots/, "
                         "and fail on console errors")
    args = ap.parse_args(argv)
    run_dir = Path(args.build) / args.profile
    out = Path(args.out) if args.out else Path(args.build) / "site" / args.profile
    if not any(run_dir.glob("*.ipynb")):
        print(f"No executed notebooks in {run_dir}: run the profile first "
              f"(make tutorial PROFILE={args.profile}), then build its site.", file=sys.stderr)
        return 1
    try:
        build_site(run_dir, out)
    except RuntimeError as e:
        print(f"The site of {run_dir} was not built: {e}.", file=sys.stderr)
        return 1
    print(f"Site of profile {args.profile} written to {out}/index.html")
    if not args.check_in_browser:
        return 0
    screenshots = Path(args.build) / "site" / "screenshots"
    try:
        problems = check_in_browser(out, screenshots)
    except RuntimeError as e:
        print(f"The pages were not checked: {e}.", file=sys.stderr)
        return 1
    print(f"Screenshots of {len(list(screenshots.glob('*.png')))} pages in {screenshots}")
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"{len(problems)} error(s) in the browser.", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
