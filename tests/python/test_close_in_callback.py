"""
Engine.close() called from inside a guard, hook or action is refused
before anything is torn down: the engine stays open with its close hooks,
which run once, at the close that happens.
"""

import pytest

import crmflow

TOGGLE = {
    "name": "toggle",
    "states": [{"name": "idle", "role": "initial"},
               {"name": "done", "role": "terminal"}],
    "transitions": [{"event": "finish", "from": "idle", "to": "done",
                     "actions": ["try_close"]}],
}


def test_refused_close_keeps_the_hooks():
    engine = crmflow.Engine()
    engine.register(TOGGLE)
    ran = []
    refused = []
    engine.on_close(lambda e: ran.append("hook"))

    def try_close(ctx):
        with pytest.raises(crmflow.InvalidArgumentError) as e:
            engine.close()
        refused.append(str(e.value))

    engine.register_action("try_close", try_close)
    engine.create("toggle", "A")
    engine.fire("A", "finish")
    ran_inside = list(ran)
    state = engine.get("A").state
    engine.close()

    assert ["close() cannot be called from inside a guard, hook or action"
            ] == refused
    assert [] == ran_inside
    assert "done" == state
    assert ["hook"] == ran
    with pytest.raises(crmflow.InvalidArgumentError, match="closed"):
        engine.get("A")
