"""The docs' code recipes run as written (docs/format.md "Reading with plain h5py").

Each Python block runs in a fresh interpreter (so nothing imported by the test run,
hdf5plugin in particular, hides a missing import) in a directory holding
``record.h5``: the bundled sample converted with the default (lz4, Blosc) compression.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(doc, section):
    """The ```python blocks of ``section`` (a '## ' heading) of ``doc``."""
    text = (ROOT / "docs" / doc).read_text()
    start = text.index("\n## " + section + "\n")
    end = text.find("\n## ", start + 1)
    body = text[start:end if end > 0 else len(text)]
    return re.findall(r"```python\n(.*?)```", body, re.S)


@pytest.fixture(scope="module")
def lz4_dir(tmp_path_factory):
    from damo_pipe.archive import layout
    from damo_pipe.archive.reader import ArchiveReader
    from damo_pipe.convert import convert_file
    d = tmp_path_factory.mktemp("recipe")
    convert_file(str(ROOT / "damo_pipe" / "data" / "sample.h5"), str(d / "record.h5"), "hdf5")
    with ArchiveReader(d / "record.h5") as r:
        assert r.attrs["compression"] == layout.DEFAULT_COMPRESSION == "lz4"
    return d


def _run(code, cwd):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_format_md_has_the_recipes():
    blocks = python_blocks("format.md", "Reading with plain h5py")
    assert len(blocks) == 2
    assert "import h5py" in blocks[0] and "import xarray" in blocks[1]


def test_h5py_recipe_reads_an_lz4_archive(lz4_dir):
    code = python_blocks("format.md", "Reading with plain h5py")[0]
    p = _run(code, lz4_dir)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip()


def test_xarray_recipe_reads_an_lz4_archive(lz4_dir):
    pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    code = python_blocks("format.md", "Reading with plain h5py")[1]
    p = _run(code, lz4_dir)
    assert p.returncode == 0, p.stderr
    # the same numbers as the archive reader
    from damo_pipe.archive.reader import ArchiveReader
    with ArchiveReader(lz4_dir / "record.h5") as r:
        rec = r.load(0)
    want = [int(x) for x in rec.snapshots.end_ns[:3]] + [int(x) for x in rec.regions.nr_accesses[:3]]
    assert [int(x) for x in re.findall(r"\d+", p.stdout)] == want


def readme_python_blocks():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_notebook_example_runs(tmp_path):
    """README's "Using it" Python example, as written, on the sample named app.h5."""
    pytest.importorskip("pandas")
    pytest.importorskip("xarray")
    pytest.importorskip("matplotlib")
    import shutil
    (code,) = readme_python_blocks()
    assert 'damo_pipe.open("app.h5")' in code
    shutil.copyfile(ROOT / "damo_pipe" / "data" / "sample.h5", tmp_path / "app.h5")
    p = _run("import matplotlib; matplotlib.use('Agg')\n" + code, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "damo_pipe.Recording" in p.stdout and "rss_bytes" in p.stdout
