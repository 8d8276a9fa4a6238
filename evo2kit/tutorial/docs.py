"""Build the tutorials' static site from a finished run: ``python -m evo2kit.tutorial.docs --profile smoke``.

The site (``build/site/<profile>/``) has the README as its home page, every page of ``docs/``, the
bundled model's card, one page per executed notebook of ``build/<profile>/`` (outputs and figures
inline, with the model, profile and time that produced it) and the run's metrics against the
expected ranges.

A site shows ONE run: the one ``run.json`` describes (its ``started`` time). An executed notebook
that started before it, or that it did not plan, is left out (a notebook left by an earlier run);
``metrics.json`` counts only when it repeats that start time. A notebook that failed, was cut short
(its run killed in the middle) or whose metric is out of range gets a warning at the top of its page,
and the exit status says so (see :func:`main`).

Tool: Sphinx with MyST-NB (renders the executed notebooks without running them) and the Furo
theme; why these, in docs/running.md ("A site of a run"). The site needs no network.
"""

from __future__ import annotations

import argparse
import copy
import json
import posixpath
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from evo2kit.cli import EX_FAILED, EX_METRICS, EX_OK, ArgumentParser, DataError, UsageError, exit_status_help, run_main
from evo2kit.tutorial.metrics import notebook_metrics
from evo2kit.tutorial.runner import ROOT, check_metrics, load_expected, model_label

# Repository files that become pages of the site (repo path -> site path): their links to each other keep
# working. Every docs/*.md joins them (docs_pages), in DOCS_ORDER first, then any other by name.
PAGES = {"README.md": "index.md", "evo2kit/weights/MODEL_CARD.md": "model_card.md"}
DOCS_ORDER = ["running", "python", "your-variants", "gpu", "nim", "data", "expected-ranges", "timings", "development"]
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
myst_heading_anchors = 3  # links to a heading, such as docs/gpu.md#fp8, resolve
html_show_sourcelink = False
html_copy_source = False
"""


def docs_pages(root: Path = ROOT) -> dict[str, str]:
    """{repo path: site path} of the documentation pages ``docs/*.md``, in reading order."""
    names = sorted(p.stem for p in (root / "docs").glob("*.md"))
    ordered = [n for n in DOCS_ORDER if n in names] + [n for n in names if n not in DOCS_ORDER]
    return {f"docs/{n}.md": f"docs/{n}.md" for n in ordered}


def rewrite_links(text: str, repo_path: str, page_dir: str, assets: dict[str, str],
                  pages: dict[str, str] = PAGES, notebooks: set[str] | None = None) -> str:
    """Point the relative links of ``text`` (the repository file ``repo_path``, shown on a page in
    the site's folder ``page_dir``) at the site: ``pages`` (repo path -> site path) and notebooks
    (those in ``notebooks``, the stems on the site; None: any) at their pages, images at copies
    (``assets``: repo path -> site path, filled here); links to files that are not on the site keep
    only their text (the site has no copy to open)."""
    here = posixpath.dirname(repo_path)

    def site_target(match: re.Match) -> str:
        bang, label, target = match.groups()
        path, _, anchor = target.partition("#")
        if re.match(r"^[a-z][a-z0-9+.-]*:", path) or not path:  # a URL, or an anchor on this page
            return match.group(0)
        repo_target = posixpath.normpath(posixpath.join(here, path))
        stem = posixpath.basename(repo_target).rsplit(".", 1)[0]
        if bang:
            assets[repo_target] = posixpath.join("_assets", repo_target)
            site = assets[repo_target]
        elif repo_target in pages:
            site = pages[repo_target]
        elif (repo_target.startswith("notebooks/") and repo_target.endswith((".py", ".ipynb"))
              and (notebooks is None or stem in notebooks)):
            site = f"notebooks/{stem}.ipynb"
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


# ------------------------------------------------------------------------------------- the run


@dataclass
class NotebookRun:
    """One notebook the run planned: ``state`` is 'ok', 'failed', 'cut short' (its execution
    stopped before the end: the run was killed, or is still going) or 'not reached' (no executed
    copy from this run); ``why`` says what happened, for the page's warning."""

    stem: str
    state: str
    why: str = ""
    nb: object = None  # the executed notebook (nbformat), None when not reached


@dataclass
class Run:
    """What one runner output folder holds of the run its ``run.json`` describes."""

    folder: Path
    settings: dict
    notebooks: dict[str, NotebookRun]
    summary: dict | None  # metrics.json, when it belongs to this run (None: the run did not finish)
    rows: list[dict]  # the metrics against their ranges (metrics.json's, or of the finished notebooks)
    left_out: dict[str, str] = field(default_factory=dict)  # stem -> why its executed copy is not shown

    @property
    def published(self) -> list[str]:
        return [s for s, n in self.notebooks.items() if n.nb is not None]

    def bad_metrics(self, stem: str | None = None) -> list[dict]:
        return [r for r in self.rows if r["status"] in ("FAIL", "MISSING") and stem in (None, r["notebook"])]

    def problems(self) -> list[str]:
        """One sentence per thing a reader must know: unfinished run, bad notebooks, bad metrics."""
        out = []
        if self.summary is None:
            out.append(f"the run started {self.settings['started']} wrote no metrics summary of its own "
                       "(it was stopped, or is still running)")
        out += [f"{n.stem}: {n.state} ({n.why})" for n in self.notebooks.values() if n.state != "ok"]
        out += [f"{r['notebook']}: {r['metric']} {_verdict(r)}" for r in self.bad_metrics()]
        return out

    def status(self) -> int:
        """0 all good, 1 a notebook failed, was cut short or not reached (or no summary), 2 a metric
        out of range or missing: the runner's codes for the same facts."""
        if self.summary is None or any(n.state != "ok" for n in self.notebooks.values()):
            return EX_FAILED
        return EX_METRICS if self.bad_metrics() else EX_OK


def _verdict(row: dict) -> str:
    if row["status"] == "MISSING":
        return "was not recorded"
    return f"= {row['value']:.4g}, out of its range [{row['min']:.4g}, {row['max']:.4g}]"


def _time(text) -> datetime | None:
    """An ISO time as written by the runner and papermill (UTC); None for none or an unreadable one."""
    try:
        t = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)  # papermill writes UTC


def read_notebook(path: Path):
    """The executed notebook at ``path``; DataError naming it when it is not a readable notebook
    (a file cut off while papermill wrote it)."""
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:  # NotJSONError is a ValueError
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path} is not a readable notebook ({first[:120]}): it was cut off while it was "
                        "written, or damaged; run that notebook again, or delete the file") from None


def notebook_state(nb, stem: str, summary: dict | None) -> tuple[str, str]:
    """(state, why) of an executed notebook of the run, from papermill's record in it and the
    runner's timings (``summary``)."""
    pm = nb.metadata.get("papermill", {})
    code = [c for c in nb.cells if c.cell_type == "code"]
    status = [c.metadata.get("papermill", {}).get("status") for c in code]
    timing = next((t for t in (summary or {}).get("timings", []) if t["notebook"] == stem), None)
    if pm.get("exception") or "failed" in status or (timing and timing["status"] != "ok"):
        where = next((i for i, c in enumerate(code) if c.metadata.get("papermill", {}).get("status") == "failed"),
                     None)
        error = next((f"{o.get('ename')}: {o.get('evalue')}" for c in code for o in c.get("outputs", [])
                      if o.get("output_type") == "error"), "an error")
        at = f"code cell {where + 1} of {len(code)}" if where is not None else "a cell"
        return "failed", f"{at} raised {error}"
    if not pm.get("end_time"):
        done = status.count("completed")
        return "cut short", f"its execution stopped after {done} of {len(code)} code cells: the run was killed, " \
                            "or is still going"
    return "ok", ""


def read_run(run_dir: Path) -> Run:
    """The run ``run_dir/run.json`` describes and what the folder holds of it (see the module
    docstring). FileNotFoundError without ``run.json``; DataError for a record or notebook that
    cannot be read."""
    run_dir = Path(run_dir)
    record = run_dir / "run.json"
    if not record.is_file():
        raise FileNotFoundError(f"{run_dir} has no run.json: it is not a runner output folder (run the profile "
                                "first: python -m evo2kit.tutorial.runner --profile NAME)")
    try:
        settings = json.loads(record.read_text())
        started, planned = _time(settings["started"]), list(settings["notebooks"])
        if started is None:
            raise ValueError(f"started is {settings['started']!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{record} does not say when the run started and what it ran ({type(e).__name__}: {e}); "
                        "it was written by an older runner or damaged: run the profile again") from None
    settings.setdefault("profile", run_dir.name)
    summary = None
    if (run_dir / "metrics.json").is_file():
        try:
            summary = json.loads((run_dir / "metrics.json").read_text())
        except ValueError as e:
            raise DataError(f"{run_dir / 'metrics.json'} is not readable JSON ({e})") from None
        if _time(summary.get("started")) != started:
            summary = None  # an earlier run's summary, or a run stopped before writing its own

    notebooks, left_out = {}, {}
    for stem in planned:
        path = run_dir / f"{stem}.ipynb"
        nb = read_notebook(path) if path.is_file() else None
        began = _time(nb.metadata.get("papermill", {}).get("start_time")) if nb is not None else None
        if nb is not None and (began is None or began < started):
            left_out[stem] = (f"from an earlier run (started {began.isoformat()})" if began else
                              "it carries no papermill start time (not executed by the runner)")
            nb = None
        if nb is None:
            failed = any(t["notebook"] == stem and t["status"] != "ok" for t in (summary or {}).get("timings", []))
            notebooks[stem] = (NotebookRun(stem, "failed", "it failed before papermill wrote its executed copy")
                               if failed else NotebookRun(stem, "not reached", "the run stopped before it"))
            continue
        state, why = notebook_state(nb, stem, summary)
        notebooks[stem] = NotebookRun(stem, state, why, nb)
    for path in sorted(run_dir.glob("[0-9][0-9]_*.ipynb")):
        if path.stem not in planned:
            left_out[path.stem] = f"not part of the run started {settings['started']}"

    if summary is not None:
        rows = summary["metrics"]
    else:  # judge what the finished notebooks recorded, as the runner would have
        models, recorded = {}, {}
        for stem, n in notebooks.items():
            if n.state == "ok":
                models[stem] = model_label(n.nb.metadata.get("papermill", {}).get("parameters", {}))
                recorded |= notebook_metrics(run_dir / f"{stem}.ipynb")
        rows = check_metrics(recorded, load_expected(), settings["profile"], models)
    return Run(run_dir, settings, notebooks, summary, rows, left_out)


# ------------------------------------------------------------------------------------- pages


def provenance(nb, settings: dict) -> str:
    """One paragraph saying which model, profile, seed and machine produced the executed notebook, and when."""
    pm = nb.metadata.get("papermill", {})
    params = pm.get("parameters", {})
    model = model_label(params)
    start = datetime.fromisoformat(pm["start_time"]).strftime("%Y-%m-%d %H:%M UTC") if pm.get("start_time") else "?"
    duration = f"{pm['duration']:.0f} s" if pm.get("duration") is not None else "?"
    return (f"```{{note}}\nExecuted by `python -m evo2kit.tutorial.runner --profile {settings.get('profile', '?')}` "
            f"with model `{model}`, seed {params.get('seed', settings.get('seed', '?'))}, "
            f"{settings.get('threads', '?')} thread(s) on {settings.get('cpu', '?')} (torch "
            f"{settings.get('torch', '?')}); started {start}, took {duration} "
            f"(papermill {pm.get('version', '?')}).\n```")


def warning(notebook: NotebookRun, bad: list[dict]) -> str | None:
    """The warning at the top of a notebook's page, or None when all went well."""
    lines = []
    if notebook.state == "failed":
        lines.append(f"**This notebook failed in this run**: {notebook.why}. Its outputs stop at that cell.")
    elif notebook.state == "cut short":
        lines.append(f"**This notebook did not run to its end**: {notebook.why}. What follows is incomplete.")
    if bad:
        lines.append("**Out of its expected range in this run**: "
                     + "; ".join(f"`{r['metric']}` {_verdict(r)}" for r in bad)
                     + " (see the [metrics](../metrics.md) and `notebooks/expected_results.yml`).")
    return "```{warning}\n" + "\n\n".join(lines) + "\n```" if lines else None


def metrics_page(run: Run) -> str:
    """The run's metrics against the expected ranges, status first so that it stays in view on a
    narrow page, then the state and time of each notebook the run planned."""
    settings, rows = run.settings, run.rows
    fmt = lambda v: "" if v is None else f"{v:.4g}"  # noqa: E731
    counts = ", ".join(f"{sum(r['status'] == s for r in rows)} {s}" for s in ("pass", "FAIL", "MISSING", "unchecked"))
    models = ", ".join(sorted({f"`{r['model']}`" for r in rows})) or "none"
    run_line = ", ".join(f"{k} {settings[k]}" for k in ("seed", "threads", "cpu", "torch", "python", "started")
                         if k in settings)
    lines = [f"# Metrics of profile `{settings['profile']}`", ""]
    if run.problems():
        lines += ["```{warning}", "This run is not a clean one:", "", *[f"- {p}" for p in run.problems()], "```", ""]
    if run.summary is None:
        lines += ["This run wrote no `metrics.json` of its own: below, the metrics of the notebooks that ran to "
                  "their end, judged as the runner judges them.", ""]
    lines += [f"Each metric the notebooks recorded, against its range in `notebooks/expected_results.yml`: {counts}. "
              f"Model(s): {models}. Run: {run_line}.", "",
              "| status | notebook | metric | value | expected |", "|---|---|---|---|---|"]
    for r in rows:
        status = r["status"] if r["status"] in ("pass", "unchecked") else f"**{r['status']}**"
        expected = "" if r["min"] is None else f"[{fmt(r['min'])}, {fmt(r['max'])}]"
        lines.append(f"| {status} | {r['notebook']} | {r['metric']} | {fmt(r['value'])} | {expected} |")
    timings = {t["notebook"]: t for t in (run.summary or {}).get("timings", [])}
    lines += ["", "| notebook | state | wall (s) | CPU (s) |", "|---|---|---|---|"]
    for stem, n in run.notebooks.items():
        t = timings.get(stem)
        lines.append(f"| {stem} | {n.state} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} |" if t else
                     f"| {stem} | {n.state} | | |")
    if run.left_out:
        lines += ["", "Left out of this site: " + "; ".join(f"`{s}.ipynb`, {why}" for s, why in run.left_out.items())
                  + "."]
    return "\n".join(lines) + "\n"


def assemble(run: Run, src: Path, root: Path = ROOT) -> list[str]:
    """Write the Sphinx sources for ``run`` into ``src``; returns the notebook stems on the site."""
    import nbformat

    stems = run.published
    pages = PAGES | docs_pages(root)
    texts = {repo_path: (root / repo_path).read_text() for repo_path in pages}
    assets: dict[str, str] = {}
    (src / "notebooks").mkdir(parents=True)
    for stem in stems:
        nb = copy.deepcopy(run.notebooks[stem].nb)  # the page's copy: notes added here stay out of ``run``
        for output in (o for cell in nb.cells for o in cell.get("outputs", [])):
            shown = output.get("data", {}).get("text/markdown")
            for repo_path, text in texts.items():  # a notebook showing one of our pages (00: the model card)
                # Known by its title line: the run showed the page as it was then, which may since have changed.
                if shown and shown.strip().partition("\n")[0] == text.strip().partition("\n")[0]:
                    output["data"]["text/markdown"] = rewrite_links(shown, repo_path, "notebooks", assets, pages,
                                                                    set(stems))
        # The notes go under the notebook's title cell, so the title stays the page's title.
        at = 1 if nb.cells and nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("#") else 0
        notes = [warning(run.notebooks[stem], run.bad_metrics(stem)), provenance(nb, run.settings)]
        nb.cells[at:at] = [nbformat.v4.new_markdown_cell(n) for n in notes if n]
        nbformat.write(nb, src / "notebooks" / f"{stem}.ipynb")

    docs = [site.removesuffix(".md") for repo, site in pages.items() if repo.startswith("docs/")]
    for repo_path, page in pages.items():
        text = rewrite_links(texts[repo_path], repo_path, posixpath.dirname(page), assets, pages, set(stems))
        if page == "index.md":
            if run.problems():  # under the title: the home page says at once that this run is not a clean one
                title, _, rest = text.partition("\n")
                text = (f"{title}\n\n```{{warning}}\nThe run shown here is not a clean one: "
                        f"{len(run.problems())} problem(s), listed on the [metrics](metrics.md) page.\n```\n{rest}")
            text += ("\n\n```{toctree}\n:caption: Tutorials, as executed\n:maxdepth: 1\n\n"
                     + "\n".join(f"notebooks/{s}" for s in stems) + "\n```\n\n"
                     "```{toctree}\n:caption: Documentation\n:maxdepth: 1\n\n" + "\n".join(docs) + "\n```\n\n"
                     "```{toctree}\n:caption: Reference\n:maxdepth: 1\n\nmodel_card\nmetrics\n```\n")
        (src / page).parent.mkdir(parents=True, exist_ok=True)
        (src / page).write_text(text)
    for repo_path, site_path in assets.items():
        (src / site_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / repo_path, src / site_path)
    (src / "metrics.md").write_text(metrics_page(run))
    (src / "conf.py").write_text(CONF_PY.format(title=f"evo2kit tutorials: profile {run.settings['profile']}"))
    return stems


def check_out(out: Path, run_dir: Path) -> None:
    """UsageError unless ``out`` can take the site: a new folder, an empty one or an earlier site
    (Sphinx's ``.buildinfo`` in it), never a file or a folder holding the run itself."""
    out, run_dir = Path(out).resolve(), Path(run_dir).resolve()
    blocker = next((p for p in [out, *out.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        what = "is a file" if blocker == out else f"is under {blocker}, which is a file"
        raise UsageError(f"--out {out} {what}: name a folder for the site")
    if run_dir == out or out in run_dir.parents:
        raise UsageError(f"--out {out} holds the run {run_dir} itself: name another folder for the site")
    if out.is_dir() and any(out.iterdir()) and not (out / ".buildinfo").is_file():
        raise UsageError(f"--out {out} holds files that are not a site built here; the site replaces its folder "
                         "whole, so name a new or empty folder")


def build_site(run_dir: Path, out: Path, run: Run | None = None) -> Path:
    """Build the site of the run in ``run_dir`` (a runner output folder; ``run``: its
    :func:`read_run`, read here when None) into ``out``; returns ``out``."""
    from sphinx.cmd.build import build_main

    run_dir, out = Path(run_dir), Path(out)
    check_out(out, run_dir)
    run = run or read_run(run_dir)
    if not run.published:
        raise FileNotFoundError(f"{run_dir} holds no executed notebook of the run started {run.settings['started']}")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        assemble(run, src)
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
    ap = ArgumentParser(prog="python -m evo2kit.tutorial.docs", description=__doc__.split("\n\n")[0],
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=exit_status_help({
                            EX_FAILED: "the site is built, but a notebook of the run failed, was cut short or not "
                                       "reached (or the run wrote no summary); or the site could not be built",
                            EX_METRICS: "the site is built, but a metric is out of range or missing"}))
    ap.add_argument("--profile", default="cpu", help="the run to publish: BUILD/<profile> (default: cpu)")
    ap.add_argument("--build", default=str(ROOT / "build"), help="the runner's output root (default: build)")
    ap.add_argument("--out", default=None, help="where the site goes (default: BUILD/site/<profile>)")
    ap.add_argument("--check-in-browser", action="store_true",
                    help="then open every page in headless Chromium, screenshot it into BUILD/site/screenshots/, "
                         "and fail on console errors")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = ap.parse_args(argv)
    return run_main(ap.prog, lambda: _publish(args), args.debug)


def _publish(args) -> int:
    run_dir = Path(args.build) / args.profile
    out = Path(args.out) if args.out else Path(args.build) / "site" / args.profile
    if not any(run_dir.glob("*.ipynb")):
        raise FileNotFoundError(f"no executed notebooks in {run_dir}: run the profile first "
                                f"(make tutorial PROFILE={args.profile}), then build its site")
    check_out(out, run_dir)
    run = read_run(run_dir)
    try:
        build_site(run_dir, out, run)
    except RuntimeError as e:
        print(f"The site of {run_dir} was not built: {e}.", file=sys.stderr)
        return EX_FAILED
    print(f"Site of profile {args.profile} written to {out}/index.html")
    for stem, why in run.left_out.items():
        print(f"left out {run_dir / stem}.ipynb: {why}", file=sys.stderr)
    for line in run.problems():
        print(f"warning: {line}", file=sys.stderr)
    status = run.status()
    if args.check_in_browser:
        screenshots = Path(args.build) / "site" / "screenshots"
        try:
            problems = check_in_browser(out, screenshots)
        except RuntimeError as e:
            print(f"The pages were not checked: {e}.", file=sys.stderr)
            return EX_FAILED
        print(f"Screenshots of {len(list(screenshots.glob('*.png')))} pages in {screenshots}")
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print(f"{len(problems)} error(s) in the browser.", file=sys.stderr)
            return EX_FAILED
    return status


if __name__ == "__main__":
    sys.exit(main())
