"""The OpenFOAM settings: what changes the numbers is the identity; unknown or bad values fail by name."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from closedloop.simulators.openfoam.settings import OpenFOAMSettings


def test_the_numbers_part_excludes_where_files_go_and_how_long_a_tool_may_run():
    numerics = OpenFOAMSettings(keep_case=True, timeout_s=10).numerics()
    assert "keep_case" not in numerics and "timeout_s" not in numerics
    assert numerics == OpenFOAMSettings().numerics()
    assert OpenFOAMSettings(advection="upwind").numerics() != numerics


@pytest.mark.parametrize("bad, field", [({"max_courant": 0}, "max_courant"), ({"advection": "QUICK"}, "advection"),
                                        ({"flow_iterations": 0}, "flow_iterations"), ({"courant": 1}, "courant")])
def test_bad_settings_name_the_field(bad, field):
    with pytest.raises(ValidationError, match=field):
        OpenFOAMSettings(**bad)
