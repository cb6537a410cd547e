"""Params are checked against their declaration: types, bounds, required, unknown names."""

import pytest

from notifier.params import Param, ParamsInvalid, clean_params
from tasks import KINDS

DECLARED = {
    "steps": Param("steps", int, 1, 10, default=5),
    "interval": Param("interval", float, 0, 2, default=0.5),
    "limit": Param("limit", int, 2, 100),
}


def test_defaults_fill_in_and_types_are_normalised():
    assert clean_params({"limit": 7.0}, DECLARED) == {"steps": 5, "interval": 0.5, "limit": 7}


@pytest.mark.parametrize("params, field, fragment", [
    ({}, "limit", "required"),
    ({"limit": 1}, "limit", "between 2 and 100"),
    ({"limit": "7"}, "limit", "number"),
    ({"limit": True}, "limit", "number"),
    ({"limit": 7.5}, "limit", "whole number"),
    ({"limit": 7, "interval": float("nan")}, "interval", "finite"),
    ({"limit": 7, "color": "red"}, "color", "not a parameter"),
])
def test_each_bad_param_is_named_with_what_is_wrong(params, field, fragment):
    with pytest.raises(ParamsInvalid) as invalid:
        clean_params(params, DECLARED)
    assert fragment in invalid.value.errors[field]


def test_params_must_be_an_object():
    with pytest.raises(ParamsInvalid) as invalid:
        clean_params([1, 2], DECLARED)
    assert "params" in invalid.value.errors


def test_sleep_rejects_a_failure_step_beyond_its_steps():
    with pytest.raises(ParamsInvalid) as invalid:
        KINDS["sleep"].clean({"steps": 3, "fail_at": 4})
    assert "fail_at" in invalid.value.errors


def test_the_built_in_kinds_are_registered_as_tasks():
    assert set(KINDS) >= {"sleep", "primes"}
    assert KINDS["sleep"].task.name == "jobs.sleep"


def test_the_maximum_is_allowed_and_one_more_is_refused():
    assert clean_params({"limit": 100, "steps": 10, "interval": 2}, DECLARED) == \
        {"limit": 100, "steps": 10, "interval": 2.0}
    for params, field in (({"limit": 101}, "limit"), ({"limit": 7, "steps": 11}, "steps"),
                          ({"limit": 7, "interval": 2.001}, "interval")):
        with pytest.raises(ParamsInvalid) as invalid:
            clean_params(params, DECLARED)
        assert "between" in invalid.value.errors[field]


def test_the_minimum_is_allowed_and_one_less_is_refused():
    assert clean_params({"limit": 2, "steps": 1, "interval": 0}, DECLARED) == \
        {"limit": 2, "steps": 1, "interval": 0.0}
    for params, field in (({"limit": 1}, "limit"), ({"limit": 7, "steps": 0}, "steps"),
                          ({"limit": 7, "interval": -0.001}, "interval")):
        with pytest.raises(ParamsInvalid) as invalid:
            clean_params(params, DECLARED)
        assert "between" in invalid.value.errors[field]


@pytest.mark.parametrize("field, bounds", [("limit", "2 and 100"), ("interval", "0 and 2")])
def test_a_number_too_large_for_a_float_is_out_of_range_not_a_crash(field, bounds):
    for value in (10**400, -(10**400)):
        with pytest.raises(ParamsInvalid) as invalid:
            clean_params({"limit": 7, field: value}, DECLARED)
        assert invalid.value.errors == {field: f"must be between {bounds}"}


def test_thousands_of_unknown_names_are_counted_not_each_echoed():
    params = {"limit": 7, **{f"name{n:04d}" + "x" * 200: 1 for n in range(5000)}}
    with pytest.raises(ParamsInvalid) as invalid:
        clean_params(params, DECLARED)
    errors = invalid.value.errors
    assert len(errors) == 11 and errors["params"] == "4990 more names are not parameters of this kind"
    assert all(len(name) <= 64 for name in errors)
    assert len(str(invalid.value)) < 2000
