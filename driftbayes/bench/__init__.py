"""Realism benchmark: scenarios with known truth, baseline mocks, prequential scores."""
