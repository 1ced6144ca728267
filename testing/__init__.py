"""Tooling beside the product: the demo and the scripted stand-in model.

Kept out of the wheel (pyproject's ``[tool.hatch.build.targets.wheel] packages`` names only
board, worker and orchestrator) and never imported by them (tests/test_layers.py checks both);
the tests, the benchmarks and ``make demo`` import it from the checkout.
"""
