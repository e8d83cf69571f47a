"""Errors a user can fix: the CLI prints their message on one line and exits with code 2."""


class BenchError(Exception):
    """Bad input or configuration; the message names the thing and what to do about it."""


class DatasetError(BenchError):
    """A dataset root, its data.csv, or one of its images is missing or malformed."""
