"""Run the tutorial notebooks under a profile and check their metrics.

    python -m evo2kit.tutorial.runner --profile smoke [--notebooks 00,03] [--out build] [--set seed=1] [--threads 1]

For each ``notebooks/NN_*.py`` (jupytext ``py:percent``, the source of truth), in order:

1. the committed ``NN_*.ipynb`` must hold the same cells and no outputs (else: refuse, and say
   to run ``jupytext --sync notebooks/*.py``); the notebook actually executed is generated from
   the ``.py`` into ``build/<profile>/inputs/``, so the committed ``.ipynb`` stays output-free;
2. papermill executes it with kernel ``python3`` and cwd = ``notebooks/`` (as Jupyter would),
   injecting the profile's parameters (``notebooks/profiles.yml``: only what the profile changes,
   the defaults being those of the cell tagged ``parameters``) after that cell; the executed
   notebook goes to ``build/<profile>/NN_*.ipynb`` and an HTML rendering beside it;
3. the notebook records metrics into ``$EVO2KIT_METRICS_DIR`` = ``build/<profile>/metrics``;
   ``$EVO2KIT_OUTPUT_DIR`` = ``build/<profile>`` is where notebooks may leave files for later ones
   (profile values may refer to it, e.g. ``$EVO2KIT_OUTPUT_DIR/checkpoint/x.yml``).

Then ``build/<profile>/metrics.json`` and ``metrics.md`` compare every metric with its range in
``notebooks/expected_results.yml``, and ``build/<profile>/run.json`` records how the run was made
(profile, overrides, seed, thread count, CPU, versions, the notebooks planned, its start time), which
``evo2kit.tutorial.expected_ranges`` reads when it counts a finished run and ``evo2kit.tutorial.docs``
when it publishes one (``metrics.json`` repeats the start time: the two belong together).

Everything is checked before anything runs: an unknown profile or notebook, a ``--set`` of a
parameter no selected notebook declares (the message lists those they declare) or of a value
whose type differs from the default's in the parameters cell (``--set seed=notanumber``; a
``None`` default takes anything), an unset ``$VAR`` of the profile, a missing or empty
``--notebooks-dir`` (66), an ``--out`` under a file or that cannot be made: one line, no
traceback (``--debug`` shows it). In Python, :func:`run` raises ``UsageError`` (a ValueError) for these.

Exit status (``--help`` lists it, with the profiles and notebooks): 0 all good, 1 a notebook
failed (the error its cell raised is printed in one line, with the path of its executed copy,
which shows the traceback), 2 a metric is out of range or missing, 64 usage error,
66 missing input (a file not found); see ``evo2kit.cli``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from evo2kit.cli import EX_FAILED, EX_METRICS, EX_OK, ArgumentParser, UsageError, exit_status_help, run_main
from evo2kit.tutorial.context import PARAMETERS, SETTINGS, check_setting, environment_name

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SHARED = "shared"  # a profile's key whose values go to every notebook that declares them
DEFAULT_MODEL = "evo2kit-tiny"
_UNSET_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")  # left in a value by os.path.expandvars: unset


def notebook_sources(notebooks_dir: Path = NOTEBOOKS) -> dict[str, Path]:
    """{stem: path} of every ``NN_*.py`` notebook, in order."""
    return {p.stem: p for p in sorted(notebooks_dir.glob("[0-9][0-9]_*.py"))}


def load_profiles(path: Path = NOTEBOOKS / "profiles.yml") -> dict:
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or set(doc) != {"profiles"}:
        raise ValueError(f"{path}: expected one top-level key, 'profiles' (defaults live in the notebooks' "
                         "parameters cells)")
    return doc


def profile_models(profile: str, profiles: dict | None = None) -> list[str]:
    """The models a profile's notebooks load, as named in profiles.yml: its shared ``model_name`` first,
    then any a notebook names for itself as ``model_name`` or ``sae_model`` (under ``gpu-evo2_7b``, notebook
    08 reads ``evo2_7b_base``, the model Arc's exon notebook reads; notebook 10 reads Goodfire's SAE on
    ``evo2_7b_262k``), so that a GPU job can download every checkpoint it needs up front."""
    prof = (profiles or load_profiles())["profiles"][profile] or {}
    named = [(prof.get(SHARED) or {}).get("model_name")] + [(prof.get(stem) or {}).get(key)
                                                          for stem in notebook_sources()
                                                          for key in ("model_name", "sae_model")]
    return list(dict.fromkeys(str(m) for m in named if m))


def declared_parameters(nb) -> dict[str, str]:
    """{name: type name} of the variables assigned in the cell tagged ``parameters``: papermill's
    ``inferred_type_name`` (from an annotation), else the type of the default when it is a literal
    (``seed = 0`` -> 'int'), else 'None' (unknown: any value goes)."""
    import papermill

    with _as_file(nb) as path:
        return {name: _type_name(p) for name, p in papermill.inspect_notebook(path).items()}


def parameter_defaults(nb) -> dict:
    """{name: default} of the parameters cell's literal defaults (``seed = 0`` -> 0); a default
    written as an expression is left out."""
    import papermill

    out = {}
    with _as_file(nb) as path:
        for name, p in papermill.inspect_notebook(path).items():
            try:
                out[name] = ast.literal_eval(p["default"])
            except (ValueError, SyntaxError):
                pass
    return out


def _type_name(param: dict) -> str:
    if param["inferred_type_name"] != "None":  # annotated: `layer_ids: list = None` is a list or None
        declared = param["inferred_type_name"]
        return f"Optional[{declared}]" if param["default"] == "None" and "Optional[" not in declared else declared
    try:
        default = ast.literal_eval(param["default"])
    except (ValueError, SyntaxError):  # an expression: its type is not known before the notebook runs
        return "None"
    return "None" if default is None else type(default).__name__


_ACCEPTS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list, tuple),
            "tuple": (list, tuple), "dict": (dict,)}
"""Type of a parameter's default -> the value types an override of it may have."""


def check_overrides(overrides: dict, declared: dict[str, dict[str, str]]) -> None:
    """Raise UsageError for an override that is neither a run setting (``evo2kit.tutorial.context.SETTINGS``,
    whose value is checked here) nor a parameter some notebook of ``declared`` ({stem: {name: type name}})
    declares, or whose value does not fit the type of a notebook's default (None: anything goes) or the
    type its annotation declares (``layer_ids: list = None``: a list or None)."""
    known = sorted({name for params in declared.values() for name in params})
    for key, value in overrides.items():
        if key in SETTINGS:
            try:
                check_setting(key, value)
            except ValueError as e:
                raise UsageError(f"--set {key}={value!r}: {e}") from None
            continue
        if key not in known:
            close = difflib.get_close_matches(key, known + list(SETTINGS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"--set {key}: no selected notebook declares a parameter {key!r}{hint}; "
                             f"they declare {', '.join(known)}; the run settings are {', '.join(SETTINGS)}")
        for stem, params in declared.items():
            want = params.get(key, "None")
            optional = want.startswith("Optional[") and want.endswith("]")  # `x: list = None`
            ok = _ACCEPTS.get(want[len("Optional["):-1] if optional else want)
            if optional and value is None:
                continue
            if ok and not (isinstance(value, ok) and (want == "bool" or not isinstance(value, bool))):
                raise UsageError(f"--set {key}={value!r}: the parameters cell of {stem} gives {key} a default of "
                                 f"type {want}, this value is of type {type(value).__name__}")


def profile_parameters(profiles: dict, profile: str, stem: str, declared: dict | None = None,
                       overrides: dict | None = None) -> dict:
    """What the runner gives one notebook: the profile's shared values, its values for the
    notebook, then ``overrides`` (shared values and overrides only where ``declared`` or a run
    setting); anything else keeps the default of the notebook's parameters cell or of its context.
    ``$VARS`` in string values are expanded from the environment. :func:`split_settings` parts the
    result into the parameters papermill injects and the run settings the kernel's environment carries.

    Raises UsageError for an unknown profile, KeyError for a notebook value that is neither declared
    nor a run setting.
    """
    if profile not in profiles["profiles"]:
        raise UsageError(f"unknown profile {profile!r}; profiles.yml has {', '.join(profiles['profiles'])}")
    prof = profiles["profiles"][profile] or {}
    shared, own = prof.get(SHARED) or {}, prof.get(stem) or {}
    overrides = overrides or {}
    if declared is not None:
        accepted = set(declared) | set(SETTINGS)
        unknown = sorted(set(own) - accepted)
        if unknown:
            raise KeyError(f"profiles.yml sets {unknown} for {stem} (profile {profile!r}), but its parameters "
                           f"cell declares only {sorted(declared)} (and the run settings are {', '.join(SETTINGS)})")
        shared = {k: v for k, v in shared.items() if k in accepted}
        overrides = {k: v for k, v in overrides.items() if k in accepted}
    params = shared | own | overrides
    return {k: os.path.expandvars(v) if isinstance(v, str) else v for k, v in params.items()}


def split_settings(params: dict) -> tuple[dict, dict]:
    """(parameters for papermill, {environment variable: value} of the run settings) of ``params``."""
    settings = {environment_name(k): "" if v is None else str(v) for k, v in params.items() if k in SETTINGS}
    return {k: v for k, v in params.items() if k not in SETTINGS}, settings


@contextlib.contextmanager
def kernel_environment(variables: dict[str, str]):
    """Within the block, notebook kernels start with ``variables`` set in their environment."""
    before = {v: os.environ.get(v) for v in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for v, value in before.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value


def model_label(params: dict) -> str:
    """The name of the model a notebook runs under a profile, as ``load_model`` reports it (a YAML
    config's stem): the notebook's or the profile's ``model_name``, even where the notebook does
    not declare it (00_setup), so that expected_results.yml keys every notebook by that name."""
    name = str(params.get("model_name") or DEFAULT_MODEL)
    return Path(name).stem if name.endswith((".yml", ".yaml")) else name


def read_py_notebook(path: Path):
    """The jupytext ``py:percent`` notebook as an nbformat notebook with a python3 kernelspec."""
    import jupytext

    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def check_pair(py_path: Path) -> None:
    """Raise if the paired ``.ipynb`` is missing, has outputs, or differs from the ``.py``."""
    import jupytext

    ipynb = py_path.with_suffix(".ipynb")
    fix = f"run `jupytext --sync {py_path.relative_to(ROOT) if py_path.is_relative_to(ROOT) else py_path}`"
    if not ipynb.is_file():
        raise RuntimeError(f"{ipynb} is missing: {fix}")
    a, b = jupytext.read(py_path), jupytext.read(ipynb)
    if any(c.get("outputs") or c.get("execution_count") for c in b.cells):
        raise RuntimeError(f"{ipynb} carries outputs; commit it without them (jupyter nbconvert "
                           "--clear-output --inplace, or regenerate it from the .py with jupytext)")
    cells = lambda nb: [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]  # noqa: E731
    if cells(a) != cells(b):
        first = next(i for i, (x, y) in enumerate(zip(cells(a) + [None], cells(b) + [None])) if x != y)
        raise RuntimeError(f"{py_path.name} and {ipynb.name} differ (first at cell {first}): {fix}")


class _as_file:
    """Context manager: a notebook object or path as a path papermill can read."""

    def __init__(self, nb):
        self.nb, self.tmp = nb, None

    def __enter__(self) -> str:
        if isinstance(self.nb, (str, Path)):
            return str(self.nb)
        import tempfile

        import nbformat

        fd, self.tmp = tempfile.mkstemp(suffix=".ipynb")
        with os.fdopen(fd, "w") as f:
            nbformat.write(self.nb, f)
        return self.tmp

    def __exit__(self, *exc):
        if self.tmp:
            os.remove(self.tmp)
        return False


# ------------------------------------------------------------------------------------- metrics


def load_expected(path: Path = NOTEBOOKS / "expected_results.yml") -> dict:
    return yaml.safe_load(path.read_text()) or {}


def check_metrics(recorded: dict, expected: dict, profile: str, models: dict[str, str]) -> list[dict]:
    """One row per metric of the notebooks in ``models`` ({stem: model name}): recorded value,
    expected range and status 'pass', 'FAIL' (out of range), 'MISSING' (expected, not recorded)
    or 'unchecked' (recorded, no range)."""
    rows = []
    for stem, model in models.items():
        ranges = ((expected.get(stem) or {}).get(profile) or {}).get(model) or {}
        got = recorded.get(stem, {})
        for name in sorted(set(ranges) | set(got)):
            r, value = ranges.get(name), got.get(name)
            if r is None:
                status = "unchecked"
            elif value is None:
                status = "MISSING"
            else:
                status = "pass" if r["min"] <= value <= r["max"] else "FAIL"
            rows.append({"notebook": stem, "model": model, "metric": name, "value": value,
                         "min": r and r["min"], "max": r and r["max"], "status": status,
                         "provenance": r and r.get("provenance", "")})
    return rows


def write_summary(rows: list[dict], out: Path, profile: str, timings: list[dict] | None = None,
                  started: str | None = None) -> None:
    """``out/metrics.json`` (the rows, the notebooks' timings, and ``started``: the run's start as
    ``run.json`` records it, which ties the summary to its run) and ``out/metrics.md`` (markdown tables)."""
    timings = timings or []
    (out / "metrics.json").write_text(json.dumps({"profile": profile, "started": started, "metrics": rows,
                                                  "timings": timings}, indent=2) + "\n")
    fmt = lambda v: "" if v is None else f"{v:.4g}"  # noqa: E731
    lines = [f"# Metrics, profile `{profile}`", "",
             "| notebook | model | metric | value | expected | status |", "|---|---|---|---|---|---|"]
    for r in rows:
        rng = "" if r["min"] is None else f"[{fmt(r['min'])}, {fmt(r['max'])}]"
        lines.append(f"| {r['notebook']} | {r['model']} | {r['metric']} | {fmt(r['value'])} | {rng} | {r['status']} |")
    if timings:
        lines += ["", "| notebook | status | wall (s) | CPU (s, kernel and its children) |", "|---|---|---|---|"]
        lines += [f"| {t['notebook']} | {t['status']} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} |" for t in timings]
        lines.append(f"| total | | {sum(t['wall_s'] for t in timings):.0f} | {sum(t['cpu_s'] for t in timings):.0f} |")
    (out / "metrics.md").write_text("\n".join(lines) + "\n")


def run_settings(profile: str, overrides: dict, threads: int) -> dict:
    """What determines a run's numbers besides the code: profile, overrides, seed, threads, CPU, versions."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"profile": profile, "overrides": overrides, "seed": overrides.get("seed", 0), "threads": threads,
            "cpu": cpu, "torch": torch.__version__, "python": platform.python_version()}


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def kernel_threads(threads: int | None):
    """Within the block, notebook kernels start with ``threads`` threads (``OMP_NUM_THREADS`` and
    friends, read by PyTorch and BLAS at start-up); yields the count they will use. None keeps the
    environment's setting (PyTorch's default: the physical cores)."""
    if threads is None:
        import torch

        yield torch.get_num_threads()
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    with kernel_environment({v: str(threads) for v in THREAD_VARS}):
        yield threads


def _children_cpu_s() -> float:
    """User + system CPU seconds of this process's finished children (the notebook kernels)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# ------------------------------------------------------------------------------------- running


def render_html(executed: Path) -> Path:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(executed))
    html = executed.with_suffix(".html")
    html.write_text(body)
    return html


def select_notebooks(sources: dict[str, Path], prefixes: list[str] | None) -> dict[str, Path]:
    """The notebooks whose stem starts with one of ``prefixes`` (all for None or []); UsageError
    for a prefix that matches none."""
    if not prefixes:
        return sources
    unknown = [n for n in prefixes if not any(s.startswith(n) for s in sources)]
    if unknown:
        raise UsageError(f"no notebook matches {', '.join(unknown)}; the notebooks are {', '.join(sources)}")
    return {s: p for s, p in sources.items() if any(s.startswith(n) for n in prefixes)}


def run(profile: str, notebooks: list[str] | None = None, out: Path = ROOT / "build",
        overrides: dict | None = None, notebooks_dir: Path = NOTEBOOKS, threads: int | None = None) -> int:
    """Execute the profile's notebooks; returns the exit status (see the module docstring).
    ``notebooks_dir`` holds the notebooks, profiles.yml and expected_results.yml; ``threads``
    sets the kernels' thread count (None: the environment's)."""
    notebooks_dir = Path(notebooks_dir).resolve()
    if not notebooks_dir.is_dir():
        raise FileNotFoundError(f"--notebooks-dir {notebooks_dir}: no such folder (name the folder of the NN_*.py "
                                "notebooks, profiles.yml and expected_results.yml)")
    found = notebook_sources(notebooks_dir)
    if not found:
        raise FileNotFoundError(f"--notebooks-dir {notebooks_dir} holds no notebooks (NN_name.py): name the folder "
                                "of the NN_*.py notebooks, profiles.yml and expected_results.yml")
    sources = select_notebooks(found, notebooks)
    profiles = load_profiles(notebooks_dir / "profiles.yml")
    outdir = (Path(out) / profile).resolve()
    metrics_dir = outdir / "metrics"
    os.environ["EVO2KIT_METRICS_DIR"] = str(metrics_dir)
    os.environ["EVO2KIT_OUTPUT_DIR"] = str(outdir)  # before the plan: profile values may refer to it
    plan, declared = {}, {}
    for stem, py in sources.items():  # check everything before running (or writing) anything
        check_pair(py)
        nb = read_py_notebook(py)
        declared[stem] = declared_parameters(nb)
        if not declared[stem]:
            raise RuntimeError(f"{py}: no cell tagged 'parameters'")
        params = profile_parameters(profiles, profile, stem, declared[stem], overrides)
        unset = sorted({m for v in params.values() if isinstance(v, str) for m in _UNSET_VAR.findall(v)})
        if unset:
            raise UsageError(f"profile {profile!r}, {stem}: environment variable(s) {', '.join(unset)} not set "
                             "(profiles.yml refers to them, e.g. for the official Evo 2 checkpoints)")
        label = {**parameter_defaults(nb), **profile_parameters(profiles, profile, stem, overrides=overrides)}
        plan[stem] = (nb, params, model_label(label))
    check_overrides(overrides or {}, declared)

    make_run_folder(Path(out), outdir)
    record_parameters(profiles, profile, overrides or {}, outdir / PARAMETERS, notebooks_dir)

    with kernel_threads(threads) as n_threads:
        settings = run_settings(profile, dict(overrides or {}), n_threads)
        # "started" identifies the run: its executed notebooks start after it (papermill's start_time)
        # and its metrics.json repeats it, so the site never mixes runs in one folder.
        started = datetime.now(timezone.utc).isoformat()
        (outdir / "run.json").write_text(json.dumps(settings | {"notebooks": list(plan), "started": started},
                                                    indent=2, default=str) + "\n")
        status, models, timings = _execute(plan, profile, outdir, metrics_dir, notebooks_dir)

    from evo2kit.tutorial.metrics import read_metrics

    rows = check_metrics(read_metrics(metrics_dir), load_expected(notebooks_dir / "expected_results.yml"), profile,
                         models if status == 0 else {})
    write_summary(rows, outdir, profile, timings, started)
    bad = [r for r in rows if r["status"] in ("FAIL", "MISSING")]
    print((outdir / "metrics.md").read_text())
    if bad and status == 0:
        print(f"[{profile}] {len(bad)} metric(s) out of range or missing: "
              + ", ".join(f"{r['notebook']}:{r['metric']}={r['value']}" for r in bad), file=sys.stderr)
        status = EX_METRICS
    return status


def make_run_folder(out: Path, outdir: Path) -> None:
    """Make ``outdir`` (``out/<profile>``) with its ``inputs/`` and ``metrics/``; UsageError naming
    ``--out`` when a file stands in the way or the folder cannot be made."""
    blocking = next((p for p in (outdir, *outdir.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise UsageError(f"--out {out}: {blocking} is a file, not a folder: name a folder for the run's results")
    try:
        (outdir / "inputs").mkdir(parents=True, exist_ok=True)
        (outdir / "metrics").mkdir(exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot make {outdir} ({e.strerror or e}): name a folder this user can "
                         "write into") from None


def failure_line(e: Exception) -> str:
    """A notebook's failure in one line: the error its cell raised (papermill's ``ename: evalue``,
    whose traceback the executed notebook shows), else the exception's own."""
    if hasattr(e, "ename"):  # papermill.PapermillExecutionError
        where = f"cell [{e.exec_count}] raised " if getattr(e, "exec_count", None) else ""
        return f"{where}{e.ename}: {' '.join(str(e.evalue).split())}"
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def record_parameters(profiles: dict, profile: str, overrides: dict, folder: Path, notebooks_dir: Path) -> None:
    """``folder/<stem>.json``: the parameters every notebook of the profile runs with (its cell's
    literal defaults, then the profile's values and ``overrides``), also those not selected for this
    run, so that a notebook reads another's with ``run.parameters_of(stem)``."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, py in notebook_sources(notebooks_dir).items():
        nb = read_py_notebook(py)
        declared = declared_parameters(nb)
        params = profile_parameters(profiles, profile, stem, declared, overrides)
        values = parameter_defaults(nb) | split_settings(params)[0]
        (folder / f"{stem}.json").write_text(json.dumps(values, indent=1, default=str) + "\n")


def _execute(plan: dict, profile: str, outdir: Path, metrics_dir: Path, notebooks_dir: Path) -> tuple[int, dict, list]:
    """Run the planned notebooks in order with papermill; stop at the first failure.
    Returns (status, {stem: model name}, timings)."""
    import nbformat
    import papermill

    status, models, timings = EX_OK, {}, []
    for stem, (nb, params, model) in plan.items():
        (metrics_dir / f"{stem}.json").unlink(missing_ok=True)
        src = outdir / "inputs" / f"{stem}.ipynb"
        nbformat.write(nb, src)
        executed = outdir / f"{stem}.ipynb"
        models[stem] = model
        print(f"[{profile}] {stem} {json.dumps(params, default=str)}", flush=True)
        injected, environment = split_settings(params)
        t0, cpu0 = time.time(), _children_cpu_s()
        try:
            with kernel_environment(environment):
                papermill.execute_notebook(str(src), str(executed), parameters=injected, kernel_name="python3",
                                           cwd=str(notebooks_dir), progress_bar=False)
        except Exception as e:  # noqa: BLE001 (papermill raises PapermillExecutionError and others)
            timings.append({"notebook": stem, "status": "FAILED", "wall_s": time.time() - t0,
                            "cpu_s": _children_cpu_s() - cpu0})
            print(f"[{profile}] {stem} FAILED after {time.time() - t0:.0f}s: {failure_line(e)}\n"
                  f"  executed notebook (its traceback): {executed}", file=sys.stderr, flush=True)
            status = EX_FAILED
            if executed.is_file():
                render_html(executed)
            break
        timings.append({"notebook": stem, "status": "ok", "wall_s": time.time() - t0,
                        "cpu_s": _children_cpu_s() - cpu0})
        print(f"[{profile}] {stem} done in {timings[-1]['wall_s']:.0f}s (CPU {timings[-1]['cpu_s']:.0f}s) -> "
              f"{render_html(executed)}", flush=True)
    return status, models, timings


def _help_epilog() -> str:
    """What --help lists besides the options: profiles, notebooks, an example, the exit statuses."""
    try:
        profiles = ", ".join(load_profiles()["profiles"])
    except (OSError, ValueError) as e:  # an installation without the notebooks folder
        profiles = f"(none: {e})"
    return (f"profiles (notebooks/profiles.yml): {profiles}\n"
            f"notebooks: {', '.join(notebook_sources()) or '(none)'}\n\n"
            "example:\n  python -m evo2kit.tutorial.runner --profile smoke --notebooks 00,03 --set seed=1 "
            "--threads 1\n\n"
            + exit_status_help({EX_OK: "all good", EX_FAILED: "a notebook failed (its executed copy is printed)",
                                EX_METRICS: "a metric out of range, or expected and not recorded"}))


def parse_overrides(items: list[str]) -> dict:
    """``["seed=1", "layer_ids=[2, 5]"]`` -> {"seed": 1, "layer_ids": [2, 5]} (values read as YAML)."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise UsageError(f"--set {item!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
    return overrides


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="python -m evo2kit.tutorial.runner", description=__doc__.split("\n\n")[0],
                        epilog=_help_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help="a profile of notebooks/profiles.yml (default: cpu)")
    ap.add_argument("--notebooks", default="", help="comma-separated prefixes, e.g. 00,03 (default: all)")
    ap.add_argument("--out", default=str(ROOT / "build"), help="output root; results go to OUT/<profile>")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a parameter in every notebook that declares it, e.g. --set seed=1 "
                         "(an undeclared name, or a value of another type than the default's, is refused)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for the notebook kernels (sets OMP_NUM_THREADS; default: the environment's)")
    ap.add_argument("--notebooks-dir", default=str(NOTEBOOKS),
                    help="folder of the notebooks, profiles.yml and expected_results.yml (default: notebooks/)")
    ap.add_argument("--debug", action="store_true", help="show the traceback of a usage error")
    args = ap.parse_args(argv)
    notebooks = [n.strip() for n in args.notebooks.split(",") if n.strip()]
    return run_main(ap.prog, lambda: run(args.profile, notebooks or None, Path(args.out), parse_overrides(args.set),
                                         Path(args.notebooks_dir), args.threads), args.debug)


if __name__ == "__main__":
    sys.exit(main())
