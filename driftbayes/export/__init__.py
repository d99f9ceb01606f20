"""Exports of a learned state to the mock runtimes and load generators people already run."""
