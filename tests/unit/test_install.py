"""Lean, conventional installs (pyproject.toml, MANIFEST.in, setup.py).

A copy of the source tree builds a wheel and an sdist (with the running interpreter's
setuptools, Cython and numpy: no build isolation), which are checked for what they
ship; the wheel is then installed into a fresh venv with only the base dependencies
(numpy, h5py, hdf5plugin, from the package index), where ``damo-collect --help`` and
``damo-analyze convert`` work and the commands that need an extra say which, in one
line. The build must not write into the tree beyond setuptools' ``build/`` and
``*.egg-info`` (what an editable install writes too) and the compiled modules.
"""
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "damo_pipe" / "data" / "sample.h5"

pytestmark = pytest.mark.slow

_SKIP_DIRS = {".git", ".venv", "build", "dist", "__pycache__", ".hypothesis", ".benchmarks",
              ".pytest_cache", ".vm-cache"}


def _ignore(directory, names):
    out = {n for n in names if n in _SKIP_DIRS or n.endswith(".egg-info")}
    if "damo_pipe" in Path(directory).parts:
        out |= {n for n in names if n.endswith((".so", ".c", ".pyc"))}
    return out


def _files(tree):
    return {str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel path, sdist path, files the build added to the copied tree)."""
    pytest.importorskip("Cython")
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=_ignore)
    if (ROOT / "build").is_dir():   # a head start: setuptools rebuilds only what changed
        shutil.copytree(ROOT / "build", src / "build")
    before = _files(src)
    out = base / "dist"
    code = ("import sys; from setuptools import build_meta as b; d = sys.argv[1]; "
            "w = b.build_wheel(d); s = b.build_sdist(d); print('BUILT', w, s)")
    p = subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, capture_output=True,
                       text=True, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    (line,) = [x for x in p.stdout.splitlines() if x.startswith("BUILT ")]
    wheel_name, sdist_name = line.split()[1:]
    added = _files(src) - before
    return out / wheel_name, out / sdist_name, added


def test_build_writes_only_build_dirs_and_modules(built):
    _, _, added = built
    stray = sorted(f for f in added if not f.startswith("build/") and ".egg-info/" not in f)
    assert not stray, stray


def test_wheel_ships_modules_not_sources(built):
    wheel, _, _ = built
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith((".c", ".pyx", ".pxd", ".pxi"))]
    assert any(n.endswith(".so") and "_fastparse" in n for n in names)
    assert "damo_pipe/data/sample.h5" in names and "damo_pipe/api.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    meta = [n for n in names if n.endswith(".dist-info/METADATA")][0]
    text = zipfile.ZipFile(wheel).read(meta).decode()
    requires = sorted(line.split(":", 1)[1].strip() for line in text.splitlines()
                      if line.startswith("Requires-Dist:") and "extra ==" not in line)
    assert [r.split(">")[0].split("=")[0] for r in requires] == ["h5py", "hdf5plugin", "numpy"]
    for extra in ("analyze", "dask", "notebook", "completion"):
        assert "Provides-Extra: %s" % extra in text


def test_sdist_ships_license_docs_tests_and_sources(built):
    _, sdist, _ = built
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for need in ("LICENSE", "README.md", "pyproject.toml", "setup.py", "docs/api.md",
                 "docs/format.md", "tests/unit/test_install.py", "damo_pipe/_fastparse.pyx",
                 "damo_pipe/_kernels_common.pxd", "damo_pipe/analyze/_ryu.pxi",
                 "damo_pipe/data/sample.h5", "tools/setup-venv"):
        assert need in names, need
    assert not [n for n in names if n.startswith("damo_pipe/") and n.endswith((".c", ".so"))]
    assert not [n for n in names if n.startswith("build/") or "__pycache__" in n]


@pytest.fixture(scope="module")
def base_venv(built, tmp_path_factory):
    """A fresh venv with the wheel and only its base dependencies."""
    wheel, _, _ = built
    d = tmp_path_factory.mktemp("venv") / "v"
    venv.EnvBuilder(with_pip=True).create(d)
    py = d / "bin" / "python"
    p = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        str(wheel)], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    return d


def _run(venv_dir, *args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(venv_dir / "bin" / args[0])] + list(args[1:]), cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_base_install_has_no_extra(base_venv, tmp_path):
    p = _run(base_venv, "python", "-c", "import importlib.util as u; print([m for m in "
             "('matplotlib', 'tqdm', 'dask', 'distributed', 'pandas', 'xarray', 'argcomplete')"
             " if u.find_spec(m)])", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr


def test_base_install_collects_and_converts(base_venv, tmp_path):
    p = _run(base_venv, "damo-collect", "--help", cwd=tmp_path)
    assert p.returncode == 0 and "record" in p.stdout, p.stderr
    p = _run(base_venv, "damo-analyze", "convert", str(SAMPLE), "out.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = _run(base_venv, "damo-analyze", "convert", "out.json", "back.h5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = _run(base_venv, "damo-analyze", "report", "wss", "--input", "back.h5", cwd=tmp_path)
    assert p.returncode == 0 and "# target_id" in p.stdout, p.stderr


@pytest.mark.parametrize("args, extra", [
    (["damo-analyze", "report", "heatmap", "--input", str(SAMPLE), "--output", "h.png"],
     "analyze"),
    (["damo-analyze", "report", "html", str(SAMPLE), "-o", "r.html"], "analyze"),
    (["damo-analyze", "batch", str(SAMPLE), "--out", "b"], "dask"),
    (["python", "-c", "import damo_pipe; damo_pipe.open(%r).to_pandas()" % str(SAMPLE)],
     "notebook"),
])
def test_missing_extra_is_one_line(base_venv, tmp_path, args, extra):
    p = _run(base_venv, *args, cwd=tmp_path)
    assert p.returncode != 0
    want = "damo-pipe[%s]" % extra
    if args[0] == "python":     # a library user gets an ImportError naming the extra
        assert "MissingExtraError" in p.stderr and want in p.stderr
        return
    assert p.returncode in (1, 2)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and want in lines[0] and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "h.png").exists() and not (tmp_path / "b").exists()
