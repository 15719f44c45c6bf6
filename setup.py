"""Build script: only cythonizes the .pyx kernels (metadata lives in pyproject.toml)."""
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
PYX_FILES = sorted(str(p.relative_to(HERE)) for p in (HERE / "damo_pipe").rglob("*.pyx"))

extensions = [
    Extension(
        path[:-4].replace("/", "."),
        [path],
        include_dirs=[numpy.get_include()],
        extra_compile_args=["-O3"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for path in PYX_FILES
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": True, "wraparound": False, "cdivision": True},
    )
)
