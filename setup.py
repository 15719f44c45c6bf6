"""Build script: only cythonizes the .pyx kernels (metadata lives in pyproject.toml)."""
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
PYX_FILES = sorted(str(p.relative_to(HERE)) for p in (HERE / "damo_pipe").rglob("*.pyx"))

# The parsers' hot helpers (_scalar, _tseg, _tnum_str, ...) must be inlined into their
# loops.  GCC's inliner caps growth relative to the size of the translation unit, and
# the small per-format modules (once one big _fastparse unit) fall under the default
# caps: raise them for these modules (docs/performance.md, restructure check).
PARSER_INLINING = ["--param=inline-unit-growth=200", "--param=large-function-growth=400"]
PARSER_MODULES = {"damo_pipe.formats._binary_kernels", "damo_pipe.formats._trace_kernels",
                  "damo_pipe.formats._json_kernels"}


def extension(path):
    """The Extension of one .pyx file (module name from its path)."""
    name = path[:-4].replace("/", ".")
    return Extension(
        name,
        [path],
        include_dirs=[numpy.get_include()],
        extra_compile_args=["-O3"] + (PARSER_INLINING if name in PARSER_MODULES else []),
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )


extensions = [extension(path) for path in PYX_FILES]

# the generated C goes under build/ (with setuptools' other intermediate files), not
# beside the .pyx sources: a build writes nothing into the package tree but the
# compiled modules an in-place (editable) build needs
setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        build_dir=str(Path("build") / "cython"),
        compiler_directives={"boundscheck": True, "wraparound": False, "cdivision": True},
    )
)
