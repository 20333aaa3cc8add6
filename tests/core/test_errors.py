from servo.core import errors


def test_every_error_maps_to_a_status_and_code() -> None:
    assert errors.InvalidAssetKey("x").http_status == 400
    assert errors.InvalidAssetKey("x").code == "BAD_REQUEST"
    assert errors.PreconditionFailed("x").http_status == 409
    assert errors.Gone("x").http_status == 410
    assert errors.Unauthorized("x").code == "UNAUTHORIZED"


def test_invalid_transition_carries_its_states() -> None:
    err = errors.InvalidTransition("task", "SUCCEEDED", "RUNNING", "terminal states are final")
    assert err.details == {"entity": "task", "from": "SUCCEEDED", "to": "RUNNING"}
    assert "SUCCEEDED -> RUNNING" in str(err)
