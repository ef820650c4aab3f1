"""Fixtures of the engine's tests: every test starts with the test nodes' call log and start signal cleared."""

import pytest

import engine_testnodes as tn


@pytest.fixture(autouse=True)
def _fresh_test_nodes():
    tn.CALLS.clear()
    tn.STARTED.clear()
