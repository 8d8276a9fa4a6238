"""environment.yml agrees with pyproject.toml and the Makefile.

The rule: pyproject.toml is the one list of Python dependencies. environment.yml's conda
section holds only ``python`` (a version that ``requires-python`` allows) and ``pip``; its pip
section holds index options, torch pinned exactly as the Makefile's default ``TORCH_SPEC`` (a
version pyproject's torch requirement allows) and ``-e .[test]`` (extras that pyproject
defines), and no other package.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
EDITABLE = re.compile(r"^-e\s+\.(?:\[(?P<extras>[^\]]*)\])?$")


def makefile_torch_spec(makefile: str) -> str:
    match = re.search(r"^TORCH_SPEC\s*\?=\s*(\S+)\s*$", makefile, re.M)
    if not match:
        raise AssertionError("Makefile: no `TORCH_SPEC ?= ...` line")
    return match.group(1)


def environment_problems(pyproject: dict, env: dict, makefile: str) -> list[str]:
    """Every way ``env`` (parsed environment.yml) breaks the rule above; empty when it agrees."""
    problems = []
    project = pyproject["project"]
    core = {canonicalize_name(Requirement(r).name): Requirement(r) for r in project["dependencies"]}
    deps = env.get("dependencies") or []
    pip_lines = [line for d in deps if isinstance(d, dict) for line in d.get("pip", [])]
    conda = [d for d in deps if isinstance(d, str)]

    pythons = [d for d in conda if re.match(r"^python\b", d)]
    if len(pythons) != 1 or not re.fullmatch(r"python\s*=\s*3\.\d+(\.\d+)?", pythons[0]):
        problems.append(f"conda section must pin python once as 'python=3.X', found {pythons}")
    else:
        version = pythons[0].split("=")[-1].strip()
        full = version + ".0" if version.count(".") == 1 else version
        if not SpecifierSet(project["requires-python"]).contains(full):
            problems.append(f"python={version} is outside requires-python {project['requires-python']!r}")
    if "pip" not in conda:
        problems.append("conda section must list 'pip'")
    for dep in conda:
        if not re.match(r"^(python|pip)\b", dep):
            problems.append(f"conda section lists {dep!r}: add Python packages to pyproject.toml, not here")

    editable = [m for m in map(EDITABLE.match, (line.strip() for line in pip_lines)) if m]
    if len(editable) != 1:
        problems.append("pip section must install the package once as '-e .[test]'")
    else:
        extras = {e.strip() for e in (editable[0]["extras"] or "").split(",") if e.strip()}
        if "test" not in extras:
            problems.append("'-e .' must include the test extra: '-e .[test]'")
        for extra in sorted(extras - set(project.get("optional-dependencies", {}))):
            problems.append(f"'-e .[{extra}]': pyproject.toml defines no extra {extra!r}")

    torch_spec = makefile_torch_spec(makefile)
    packages = [line.strip() for line in pip_lines if not line.strip().startswith("-")]
    for line in packages:
        req = Requirement(line)
        if canonicalize_name(req.name) != "torch":
            problems.append(f"pip section lists {line!r}: add it to pyproject.toml instead")
        elif line != torch_spec:
            problems.append(f"pip section pins {line!r} but the Makefile's TORCH_SPEC is {torch_spec!r}")
    if not any(canonicalize_name(Requirement(line).name) == "torch" for line in packages):
        problems.append(f"pip section must pin torch as the Makefile does: {torch_spec!r}")
    pinned = Requirement(torch_spec).specifier
    versions = [s.version for s in pinned if s.operator == "=="]
    if len(versions) != 1 or not core["torch"].specifier.contains(versions[0]):
        problems.append(f"Makefile TORCH_SPEC {torch_spec!r} is not one version allowed by pyproject's {core['torch']}")
    return problems


@pytest.fixture(scope="module")
def files() -> tuple[dict, dict, str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return pyproject, env, (ROOT / "Makefile").read_text()


def test_environment_yml_agrees_with_pyproject_and_makefile(files):
    assert environment_problems(*files) == []


def test_the_check_catches_each_kind_of_drift(files):
    pyproject, _, makefile = files
    torch_spec = makefile_torch_spec(makefile)
    pip = [torch_spec.replace("==", "==1."), "-e .[gpu]", "pandas"]
    bad = {"dependencies": ["python=3.10", "numpy>=1.26", {"pip": pip}]}
    problems = "\n".join(environment_problems(pyproject, bad, makefile))
    for expected in ("python=3.10 is outside", "must list 'pip'", "lists 'numpy>=1.26'",
                     "must include the test extra", "no extra 'gpu'", "lists 'pandas'",
                     "but the Makefile's TORCH_SPEC"):
        assert expected in problems
    no_pip = {"dependencies": ["python=3.11", "pip"]}
    problems = "\n".join(environment_problems(pyproject, no_pip, makefile))
    assert "'-e .[test]'" in problems and "must pin torch" in problems
