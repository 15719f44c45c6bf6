"""Optional dependencies (pyproject's extras) and the one error when one is missing.

The base install is what ``damo-collect`` needs (numpy, h5py, hdf5plugin). Pictures,
progress bars, Dask batches, the notebook API and shell completion need extras; each
is imported where it is used, through :func:`require`, so that a missing one is one
line naming the extra to install (:class:`~damo_pipe.errors.MissingExtraError`), not a
traceback.
"""
import importlib

from damo_pipe.errors import MissingExtraError

#: top-level module -> the extra that installs it (pyproject.toml [project.optional-dependencies])
EXTRA_OF = {
    "matplotlib": "analyze",
    "tqdm": "analyze",
    "dask": "dask",
    "distributed": "dask",
    "pandas": "notebook",
    "xarray": "notebook",
    "h5netcdf": "notebook",
    "argcomplete": "completion",
}


def missing_extra_error(module, purpose=None):
    """The MissingExtraError for top-level ``module`` (``purpose``: what needs it)."""
    top = module.split(".")[0]
    extra = EXTRA_OF.get(top, "all")
    why = " (needed for %s)" % purpose if purpose else ""
    return MissingExtraError("%s is not installed%s: install damo-pipe[%s], e.g. "
                             "pip install 'damo-pipe[%s]'" % (top, why, extra, extra),
                             name=top)


def require(module, purpose=None):
    """Import and return ``module`` (e.g. ``"matplotlib.figure"``); MissingExtraError
    naming its extra when its package is not installed. An ImportError raised from
    inside an installed package (a broken install) propagates unchanged."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        if e.name is not None and e.name.split(".")[0] != top:
            raise
        raise missing_extra_error(module, purpose) from None


def available(module):
    """True when ``module``'s package can be imported (nothing is imported)."""
    import importlib.util
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False
