"""The short CI run of the CLI fuzz harness (tools/fuzz; the long run and its figures are
in docs/robustness.md): damaged inputs of every flavour through damo-analyze's main(),
each outcome either a success equal to an independent re-parse or one located error
line with exit 1."""
import io
import os

from tests.fuzz import harness

#: CI seed: a fresh one per day would find new inputs but make failures hard to
#: reproduce; the long runs use other seeds
SEED = "ci"
COUNT = int(os.environ.get("DAMO_PIPE_CI_FUZZ_COUNT", "2000"))


def test_short_cli_fuzz_run_has_no_failures():
    log = io.StringIO()
    summary = harness.run(COUNT, SEED, jobs=2, timeout=60.0, out=log, progress_every=1e9)
    assert summary["inputs"] == COUNT
    # both outcome classes occur: the run exercised readers and error paths
    assert summary["classes"].get("ok", 0) > 0, summary
    assert summary["classes"].get("error", 0) > 0, summary
    assert summary["failures"] == 0, log.getvalue()
