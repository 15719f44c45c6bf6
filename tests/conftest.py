"""Fixtures shared by every test directory."""
import pytest

from tests.support.engines import ENGINES


@pytest.fixture(params=ENGINES)
def engine(request):
    """Every kernel test runs on both engines, the compiled one and its pure-Python twin."""
    return request.param
