import pytest

from mm.engine.clock import VirtualClock
from tests.connectors.venue import T0, venue


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.fixture
def sim(clock):
    return venue(clock)
