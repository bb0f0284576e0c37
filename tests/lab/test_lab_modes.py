"""``[campaign]``: the mode and the queue, refused by name when they cannot be valid."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from closedloop.lab.modes import ModeConfig


def test_defaults_are_the_synchronous_rounds():
    assert ModeConfig() == ModeConfig(mode="sync", queued=1)


@pytest.mark.parametrize(("fields", "named"), [({"mode": "parallel"}, "mode"), ({"queued": -1}, "queued"),
                                               ({"workers": 2}, "workers")])
def test_bad_fields_are_named(fields, named):
    with pytest.raises(ValidationError) as err:
        ModeConfig(**fields)
    assert err.value.errors()[0]["loc"] == (named,)
