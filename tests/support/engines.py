"""The two engines of every kernel: the compiled one and its pure-Python twin."""

#: for the tests that compare both engines within one test (the ``engine`` fixture of
#: tests/conftest.py runs a test once per engine)
ENGINES = ("cython", "python")
