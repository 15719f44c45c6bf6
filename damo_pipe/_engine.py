"""One place that picks between a compiled (Cython) kernel module and its Python twin.

Every reader, report and collector kernel takes ``engine="auto"|"cython"|"python"``;
they all resolve it here so that the names, the fallback and the error are the same.
"""
import importlib

from damo_pipe.errors import EngineError

ENGINES = ("auto", "cython", "python")


def check_engine(engine):
    """Raise EngineError unless ``engine`` is one of ENGINES."""
    if engine not in ENGINES:
        raise EngineError("engine must be one of %s, not %r" % (", ".join(ENGINES), engine))


def select_engine(engine, compiled_module):
    """The imported compiled module to use, or None for the pure-Python twin.

    ``engine`` "python" -> None; "auto" -> the compiled module when it is built, else
    None; "cython" -> the compiled module, or EngineError when it is not built.
    ``compiled_module`` is a dotted name such as "damo_pipe.formats._binary_kernels".
    """
    check_engine(engine)
    if engine == "python":
        return None
    try:
        return importlib.import_module(compiled_module)
    except ImportError:
        if engine == "cython":
            raise EngineError("the Cython engine (%s) is not built; reinstall the package "
                              "or use the python engine" % compiled_module) from None
        return None
