"""Fixtures shared by every test directory."""
import os

import pytest

from tests.support.engines import ENGINES

# Commands under test run in the test's own interpreter or child process, never in a
# resident `damo-analyze serve` the developer may have running (tests/unit/test_serve.py
# starts its own servers on private sockets).
os.environ["DAMO_PIPE_SERVER"] = "off"


@pytest.fixture(params=ENGINES)
def engine(request):
    """Every kernel test runs on both engines, the compiled one and its pure-Python twin."""
    return request.param
