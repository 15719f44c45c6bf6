"""Shell completion (argcomplete, README "Shell completion"): bash runs the completion
function that ``register-python-argcomplete`` prints, as a user's shell would, and the
candidates it offers are checked; deferred (lazily built) parsers are completed too."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import damo_pipe

pytest.importorskip("argcomplete")
BIN = Path(sys.executable).parent
REGISTER = BIN / "register-python-argcomplete"
SAMPLE = Path(damo_pipe.__file__).parent / "data" / "sample.h5"

SCRIPT = r"""
source <("$REGISTER" damo-analyze)
source <("$REGISTER" damo-collect)
comp() {
    COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$COMP_LINE"
    [[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_TYPE=9; COMPREPLY=()
    _python_argcomplete "${COMP_WORDS[0]}"
    printf '%s\n' "$1" "${COMPREPLY[@]}" "--"
}
while IFS= read -r line; do comp "$line"; done
"""


def complete(lines, cwd):
    """{command line: [candidates]} as bash's completion function computes them."""
    if shutil.which("bash") is None or not REGISTER.exists():
        pytest.skip("bash or register-python-argcomplete not available")
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ.get("PATH", "")),
               REGISTER=str(REGISTER))
    p = subprocess.run(["bash", "-c", SCRIPT], input="".join(l + "\n" for l in lines),
                       capture_output=True, text=True, cwd=cwd, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    out, cur = {}, None
    for line in p.stdout.splitlines():
        if cur is None:
            cur = line
            out[cur] = []
        elif line == "--":
            cur = None
        else:
            out[cur].append(line.strip())
    return out


def test_bash_completes_subcommands_options_and_choices(tmp_path):
    (tmp_path / "run1.h5").write_bytes(b"")
    got = complete([
        "damo-analyze ",
        "damo-analyze rep",
        "damo-analyze report ",
        "damo-analyze report heatmap --res",
        "damo-analyze report heatmap --draw_range ",
        "damo-analyze convert --format ",
        "damo-analyze info ru",
        "damo-collect ",
        "damo-collect record --targ",
    ], tmp_path)
    assert {"info", "convert", "report", "batch"} <= set(got["damo-analyze "])
    assert got["damo-analyze rep"] == ["report"]
    assert {"heatmap", "wss", "access", "html"} <= set(got["damo-analyze report "])
    assert got["damo-analyze report heatmap --res"] == ["--resol"]
    assert got["damo-analyze report heatmap --draw_range "] == ["hottest", "busiest", "all"]
    assert {"hdf5", "json", "json_compressed", "perf_script"} == set(
        got["damo-analyze convert --format "])
    assert got["damo-analyze info ru"] == ["run1.h5"]            # files
    assert {"record", "start", "stop", "status", "snapshot"} <= set(got["damo-collect "])
    assert got["damo-collect record --targ"] and all(
        c.startswith("--targ") for c in got["damo-collect record --targ"])


def test_a_normal_run_does_not_load_argcomplete(tmp_path):
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    env.pop("_ARGCOMPLETE", None)
    p = subprocess.run([sys.executable, "-m", "damo_pipe.analyze.cli", "info", str(SAMPLE)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "argcomplete" not in p.stderr


def test_prepare_all_builds_nested_deferred_parsers():
    from damo_pipe._completion import prepare_all
    from damo_pipe._cli_common import build_parser
    from damo_pipe.analyze.cli import DESCRIPTION, available_commands
    parser = build_parser("damo-analyze", DESCRIPTION, available_commands(),
                          "damo_pipe.analyze.commands")
    prepare_all(parser)
    sub = next(a for a in parser._actions if a.dest == "command")
    report = sub.choices["report"]
    kinds = next(a for a in report._actions if a.dest == "report_kind")
    heatmap_opts = kinds.choices["heatmap"]._option_string_actions
    assert "--resol" in heatmap_opts and "--draw_range" in heatmap_opts
    assert "--paths" not in sub.choices["convert"]._option_string_actions
    assert any(a.dest == "paths" for a in sub.choices["convert"]._actions)
