"""Fixtures shared by the unit tests."""
import pytest

from tests.support.plotting import real_plot_modules


@pytest.fixture
def plotting():
    """The real heatmap/plots modules (made by other parts of the project) are needed."""
    if not real_plot_modules():
        pytest.skip("damo_pipe.analyze.heatmap/plots not available")
    return "processes"
