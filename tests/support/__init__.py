"""Fakes and shared helpers of the tests (no tests here): imported as ``tests.support.*``."""
