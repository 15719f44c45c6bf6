"""Offline analysis of DAMON records: damo-compatible reports, pictures, batch jobs."""
