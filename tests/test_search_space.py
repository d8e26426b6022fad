"""Tests for laptime.tuning.search_space (fast; numpy/scipy only)."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys

import numpy as np
import pytest

from laptime.tuning import (
    Choice,
    Range,
    SearchSpace,
    SearchSpaceError,
    halton_points,
    load_point,
)

SPACE = {
    "learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "beta1": {"min": 0.8, "max": 0.99, "scaling": "linear"},
    "warmup_factor": {"feasible_points": [0.05]},
    "schedule": {"feasible_points": ["cosine", "linear", "constant"]},
}
FIXED = [
    {"learning_rate": 0.001, "beta1": 0.9},
    {"learning_rate": 0.003, "beta1": 0.95},
    {"learning_rate": 0.01, "beta1": 0.8},
]


def write(tmp_path, obj_or_text, name="space.json"):
    path = tmp_path / name
    text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text, indent=2)
    path.write_text(text)
    return path


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(SearchSpaceError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------------
# Parsing


def test_dict_form_from_file(tmp_path):
    path = write(tmp_path, SPACE)
    space = SearchSpace.load(path)
    assert not space.is_fixed_list
    assert space.names == ["beta1", "learning_rate", "schedule", "warmup_factor"]
    assert space.dimensions["learning_rate"] == Range("learning_rate", 1e-4, 1e-2, "log")
    assert space.dimensions["beta1"] == Range("beta1", 0.8, 0.99, "linear")
    assert space.dimensions["warmup_factor"] == Choice("warmup_factor", (0.05,))
    assert space.dimensions["schedule"].points == ("cosine", "linear", "constant")
    assert space.fixed_points == []
    assert space.max_points is None
    assert space.source == str(path)
    # parse() with a path (str and PathLike) reads the file too
    assert SearchSpace.parse(str(path)) == space
    assert SearchSpace.parse(path) == space


def test_dict_form_inline_text():
    space = SearchSpace.parse(json.dumps(SPACE))
    assert space == SearchSpace.from_json(SPACE)
    assert space.source == "inline JSON"


def test_fixed_list_from_file_and_inline(tmp_path):
    path = write(tmp_path, FIXED)
    space = SearchSpace.load(path)
    assert space.is_fixed_list
    assert len(space) == 3 and space.max_points == 3
    assert space.names == ["beta1", "learning_rate"]
    assert space.fixed_points == FIXED
    assert space.dimensions == {}
    assert SearchSpace.parse(json.dumps(FIXED)) == space


def test_len_of_dict_form_raises_type_error():
    space = SearchSpace.from_json(SPACE)
    with pytest.raises(TypeError, match="max_points"):
        len(space)
    assert bool(space)


def test_to_json_round_trips():
    for obj in (SPACE, FIXED):
        space = SearchSpace.from_json(obj)
        again = SearchSpace.from_json(json.loads(json.dumps(space.to_json())))
        assert again == space
    assert SearchSpace.from_json(SPACE).to_json()["learning_rate"] == SPACE["learning_rate"]


def test_integer_bounds_become_floats_and_min_equals_max_is_constant():
    space = SearchSpace.from_json({"a": {"min": 1, "max": 1, "scaling": "log"},
                                   "b": {"min": 0, "max": 2, "scaling": "linear"}})
    assert space.dimensions["a"] == Range("a", 1.0, 1.0, "log")
    for p in space.points(20, seed=3):
        assert p["a"] == 1.0 and isinstance(p["a"], float)
        assert 0.0 <= p["b"] <= 2.0


def test_fixed_points_may_name_different_hyperparameters():
    space = SearchSpace.from_json([{"lr": 0.1}, {"lr": 0.2, "label_smoothing": 0.1}])
    assert space.names == ["label_smoothing", "lr"]
    assert space.points(2, seed=0) == [{"lr": 0.1}, {"lr": 0.2, "label_smoothing": 0.1}]


# ------------------------------------------------------------------------------------------
# Validation errors


def dim(spec):
    return {"learning_rate": spec}


@pytest.mark.parametrize(
    "obj, parts",
    [
        (dim({"min": 1e-4, "max": 1e-2, "scale": "log"}),
         ["learning_rate", "unknown key", "'scale'", "did you mean 'scaling'"]),
        (dim({"max": 1e-2, "scaling": "log"}), ["learning_rate", "missing", "'min'"]),
        (dim({"min": 1e-4, "scaling": "log"}), ["learning_rate", "missing", "'max'"]),
        (dim({"min": 1e-4, "max": 1e-2}), ["learning_rate", "missing", "'scaling'"]),
        (dim({"min": 1e-2, "max": 1e-4, "scaling": "log"}),
         ["learning_rate", "greater than", "min <= max"]),
        (dim({"min": "0.1", "max": 1, "scaling": "linear"}),
         ["learning_rate", "'min'", "string", "expected a finite number"]),
        (dim({"min": 0.1, "max": True, "scaling": "linear"}),
         ["learning_rate", "'max'", "boolean", "expected a finite number"]),
        (dim({"min": 0.1, "max": float("inf"), "scaling": "linear"}),
         ["learning_rate", "'max'", "inf", "finite"]),
        (dim({"min": 0.1, "max": 1, "scaling": "exp"}),
         ["learning_rate", "'exp'", "'linear' or 'log'"]),
        (dim({"min": 0.0, "max": 1, "scaling": "log"}),
         ["learning_rate", "log", "min > 0"]),
        (dim({"min": -1.0, "max": 1, "scaling": "log"}), ["learning_rate", "min > 0"]),
        (dim({"feasible_points": []}), ["learning_rate", "feasible_points", "empty"]),
        (dim({"feasible_points": 0.1}), ["learning_rate", "feasible_points", "list"]),
        (dim({"feasible_points": [0.1], "min": 0.1}), ["learning_rate", "mixes"]),
        (dim({}), ["learning_rate", "empty object", "range", "choice"]),
        (dim(0.001), ["learning_rate", "number", "expected an object", "feasible_points"]),
        (dim([0.1, 0.2]), ["learning_rate", "list", "expected an object"]),
        ({}, ["empty object", "at least one dimension"]),
        ([], ["empty list", "at least one fixed point"]),
        ([{"lr": 0.1}, 0.2], ["fixed point at index 1", "number", "expected an object"]),
        ([{"lr": 0.1}, [0.2]], ["fixed point at index 1", "list"]),
        ({"learning rate": {"feasible_points": [1]}}, ["'learning rate'", "identifier"]),
        ({"1lr": {"feasible_points": [1]}}, ["'1lr'", "identifier"]),
        ({"lambda": {"feasible_points": [1]}}, ["'lambda'", "keyword"]),
        ([{"learning-rate": 0.1}], ["fixed point at index 0", "'learning-rate'", "identifier"]),
        (42, ["top-level JSON", "number", "object of dimensions", "list of fixed points"]),
        ("lr", ["top-level JSON", "string", "expected"]),
        (None, ["top-level JSON", "null"]),
    ],
)
def test_validation_errors(obj, parts):
    message = error_of(SearchSpace.from_json, obj, source="my_space.json")
    assert message.startswith("search space file 'my_space.json': ")
    for part in parts:
        assert part in message, (part, message)


def test_error_is_a_value_error_with_source():
    with pytest.raises(ValueError) as info:
        SearchSpace.from_json({}, source="x.json")
    assert isinstance(info.value, SearchSpaceError)
    assert info.value.source == "x.json"
    assert "x.json" not in info.value.detail


def test_error_without_source():
    message = error_of(SearchSpace.from_json, dim({"min": 2, "max": 1, "scaling": "linear"}))
    assert message.startswith("search space: dimension 'learning_rate'")


def test_json_syntax_error_in_file_reports_line_and_column(tmp_path):
    path = write(tmp_path, '{\n  "lr": {"min": 1e-4, "max": 1e-2,, "scaling": "log"}\n}\n')
    message = error_of(SearchSpace.load, path)
    assert str(path) in message
    assert f"{path}:2:35" in message
    assert "invalid JSON" in message


def test_json_syntax_error_inline_reports_line_and_column():
    message = error_of(SearchSpace.parse, '{"lr": {"min": 1,}}')
    assert "inline JSON" in message and "line 1 column 18" in message


def test_nan_and_duplicate_keys_rejected():
    assert "NaN" in error_of(SearchSpace.parse, '{"lr": {"min": NaN, "max": 1, "scaling": "log"}}')
    assert "Infinity" in error_of(SearchSpace.parse, '[{"lr": Infinity}]')
    message = error_of(SearchSpace.parse, '{"lr": {"feasible_points": [1]}, "lr": {"feasible_points": [2]}}')
    assert "'lr'" in message and "twice" in message


def test_missing_file_and_other_file_problems(tmp_path):
    message = error_of(SearchSpace.load, tmp_path / "nope.json")
    assert "nope.json" in message and "not found" in message
    message = error_of(SearchSpace.parse, str(tmp_path / "nope.json"))
    assert "nope.json" in message and "not found" in message and "inline JSON" in message
    assert "directory" in error_of(SearchSpace.load, tmp_path)
    assert "empty" in error_of(SearchSpace.load, write(tmp_path, "  \n", "empty.json"))
    assert "empty string" in error_of(SearchSpace.parse, "   ")


def test_validation_error_in_file_names_the_file(tmp_path):
    path = write(tmp_path, dim({"min": 1e-4, "max": 1e-2, "scale": "log"}))
    message = error_of(SearchSpace.load, path)
    assert message.startswith(f"search space file '{path}': dimension 'learning_rate'")


# ------------------------------------------------------------------------------------------
# Points


def test_points_within_bounds_and_plain_python_types():
    space = SearchSpace.from_json(SPACE)
    points = space.points(200, seed=7)
    assert len(points) == 200
    for p in points:
        assert set(p) == set(SPACE)
        assert 1e-4 <= p["learning_rate"] <= 1e-2
        assert 0.8 <= p["beta1"] <= 0.99
        assert type(p["learning_rate"]) is float and type(p["beta1"]) is float
        assert p["warmup_factor"] == 0.05
        assert p["schedule"] in ("cosine", "linear", "constant")
        assert type(p["schedule"]) is str
    # all choices get used, roughly evenly (quasi-random)
    counts = {s: sum(p["schedule"] == s for p in points) for s in ("cosine", "linear", "constant")}
    assert all(50 <= c <= 84 for c in counts.values()), counts


def test_bounds_hold_at_extreme_ends():
    r = Range("x", 1e-8, 3.0, "log")
    assert r.value(0.0) == 1e-8
    assert r.value(np.nextafter(1.0, 0.0)) <= 3.0
    lin = Range("y", 0.1, 0.3, "linear")
    assert 0.1 <= lin.value(np.nextafter(1.0, 0.0)) <= 0.3
    c = Choice("z", ("a", "b"))
    assert c.value(0.0) == "a" and c.value(np.nextafter(1.0, 0.0)) == "b"


def test_log_scaling_is_log_uniform():
    space = SearchSpace.from_json({"lr": {"min": 1e-6, "max": 1.0, "scaling": "log"}})
    values = [p["lr"] for p in space.points(512, seed=1)]
    geometric_mean = math.sqrt(1e-6 * 1.0)  # 1e-3; the arithmetic midpoint would be ~0.5
    median = statistics.median(values)
    assert geometric_mean / 2 < median < geometric_mean * 2
    # each decade gets about a sixth of the points
    decades = np.floor(np.log10(values)).astype(int)
    counts = np.bincount(decades + 6, minlength=6)[:6]
    assert all(abs(c - 512 / 6) < 10 for c in counts), counts


def test_linear_scaling_is_uniform():
    space = SearchSpace.from_json({"b": {"min": 0.0, "max": 10.0, "scaling": "linear"}})
    values = [p["b"] for p in space.points(500, seed=2)]
    assert abs(statistics.median(values) - 5.0) < 0.2
    assert min(values) < 0.1 and max(values) > 9.9


def test_same_seed_same_points():
    space = SearchSpace.from_json(SPACE)
    assert space.points(10, seed=123) == space.points(10, seed=123)
    # a prefix of a longer run equals a shorter run
    assert space.points(25, seed=5)[:10] == space.points(10, seed=5)


def test_different_seeds_give_different_points():
    space = SearchSpace.from_json(SPACE)
    runs = [space.points(5, seed=s) for s in range(20)]
    firsts = {(p[0]["learning_rate"], p[0]["beta1"]) for p in runs}
    assert len(firsts) == 20  # every seed has its own first point
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            a = [(p["learning_rate"], p["beta1"]) for p in runs[i]]
            b = [(p["learning_rate"], p["beta1"]) for p in runs[j]]
            assert not set(a) & set(b), (i, j)


def test_key_order_in_file_does_not_matter(tmp_path):
    forward = write(tmp_path, SPACE, "a.json")
    backward = write(tmp_path, dict(reversed(list(SPACE.items()))), "b.json")
    assert list(json.loads(backward.read_text())) != list(SPACE)
    pa = SearchSpace.load(forward).points(16, seed=9)
    pb = SearchSpace.load(backward).points(16, seed=9)
    assert pa == pb
    assert [list(p) for p in pa] == [list(p) for p in pb]


def test_fixed_list_points_in_order():
    space = SearchSpace.from_json(FIXED)
    assert space.points(2, seed=0) == FIXED[:2]
    assert space.points(3, seed=99) == FIXED  # seed is irrelevant
    out = space.points(1, seed=0)
    out[0]["learning_rate"] = 123.0  # callers can't mutate the space
    assert space.points(1, seed=0) == FIXED[:1]


def test_fixed_list_too_many_points():
    space = SearchSpace.from_json(FIXED, source="fixed.json")
    message = error_of(space.points, 5, seed=0)
    assert "fixed.json" in message and "5" in message and "only 3" in message
    assert space.points(min(5, len(space)), seed=0) == FIXED


@pytest.mark.parametrize("n", [0, -1])
def test_n_must_be_positive(n):
    for obj in (SPACE, FIXED):
        assert ">= 1" in error_of(SearchSpace.from_json(obj).points, n, seed=0)


def test_bad_seed():
    space = SearchSpace.from_json(SPACE)
    assert "seed" in error_of(space.points, 3, seed=-1)
    assert "seed" in error_of(space.points, 3, seed=1.5)


def test_all_constant_space():
    space = SearchSpace.from_json({"a": {"feasible_points": [3]}, "b": {"min": 2, "max": 2,
                                                                        "scaling": "linear"}})
    assert space.points(3, seed=0) == [{"a": 3, "b": 2.0}] * 3


def test_choice_of_structured_values_is_copied():
    space = SearchSpace.from_json({"betas": {"feasible_points": [[0.9, 0.999], [0.95, 0.98]]},
                                   "x": {"min": 0, "max": 1, "scaling": "linear"}})
    points = space.points(8, seed=4)
    assert {tuple(p["betas"]) for p in points} == {(0.9, 0.999), (0.95, 0.98)}
    points[0]["betas"].append(1)
    assert all(len(p["betas"]) == 2 for p in space.points(8, seed=4))


# ------------------------------------------------------------------------------------------
# halton_points


def test_halton_points_shape_range_and_seeding():
    u = halton_points(64, 3, seed=0)
    assert u.shape == (64, 3) and u.dtype == np.float64
    assert (u >= 0).all() and (u < 1).all()
    assert np.array_equal(u, halton_points(64, 3, seed=0))
    assert not np.allclose(u, halton_points(64, 3, seed=1))
    # low discrepancy: each column's mean is very close to 1/2
    assert np.all(np.abs(u.mean(axis=0) - 0.5) < 0.02)
    assert halton_points(4, 0, seed=0).shape == (4, 0)
    with pytest.raises(SearchSpaceError):
        halton_points(0, 2, seed=0)


# ------------------------------------------------------------------------------------------
# load_point


def test_load_point_inline_and_file(tmp_path):
    assert load_point('{"learning_rate": 0.001, "beta1": 0.9}') == {
        "learning_rate": 0.001, "beta1": 0.9}
    path = write(tmp_path, {"learning_rate": 0.002, "schedule": "cosine"}, "hp.json")
    assert load_point(str(path)) == {"learning_rate": 0.002, "schedule": "cosine"}
    assert load_point(path) == {"learning_rate": 0.002, "schedule": "cosine"}
    assert load_point("{}") == {}


@pytest.mark.parametrize(
    "text, parts",
    [
        ('[{"learning_rate": 0.001}]', ["hyperparameter point", "list", "ONE point"]),
        ('{"learning_rate": 0.001', ["hyperparameter point", "invalid JSON", "line 1 column"]),
        ('{"learning-rate": 0.001}', ["'learning-rate'", "identifier"]),
        ('{"class": 1}', ["'class'", "keyword"]),
        ('{"lr": NaN}', ["NaN"]),
        ('{"lr": {"min": 0.1, "max": 1, "scaling": "log"}}', ["'lr'", "search-space dimension"]),
        ("missing_hparams.json", ["missing_hparams.json", "not found"]),
    ],
)
def test_load_point_errors(text, parts):
    message = error_of(load_point, text)
    for part in parts:
        assert part in message, (part, message)


def test_load_point_file_not_an_object(tmp_path):
    path = write(tmp_path, "0.001", "hp.json")
    message = error_of(load_point, path)
    assert str(path) in message and "number" in message and "expected an object" in message
    path = write(tmp_path, '{"lr": 0.1,\n "b": }', "bad.json")
    assert f"{path}:2:7" in error_of(load_point, path)


# ------------------------------------------------------------------------------------------
# Hygiene


def test_does_not_import_torch():
    code = "import sys, laptime.tuning; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------
# check_point_types: a point's values against what the algorithm expects


def test_check_point_types_against_space_and_defaults():
    from laptime.tuning import check_point_types

    space = SearchSpace.from_json({"learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
                                   "schedule": {"feasible_points": ["cosine", "linear"]},
                                   "nesterov": {"feasible_points": [True, False]}})
    defaults = {"learning_rate": 1e-3, "grad_clip": None, "warmup_factor": 0.05}
    ok = {"learning_rate": 0.5, "schedule": "rex", "nesterov": False, "grad_clip": 1.0, "warmup_factor": 0,
          "unknown_here": "anything"}  # not range-checked; names known from neither are not checked
    check_point_types(ok, space, defaults, "algorithm 'x'")
    for point, parts in [
        ({"learning_rate": "fast"}, ["'learning_rate' is a string ('fast')", "expects a number", "range [0.0001, 0.01]"]),
        ({"learning_rate": True}, ["a boolean", "expects a number"]),
        ({"schedule": 3}, ["a number (3)", "expects a string", "feasible points ['cosine', 'linear']"]),
        ({"nesterov": "yes"}, ["expects a boolean"]),
        ({"warmup_factor": None}, ["is null", "its self-tuning default 0.05"]),
    ]:
        with pytest.raises(SearchSpaceError) as info:
            check_point_types(point, space, defaults, "algorithm 'x'")
        for part in parts:
            assert part in str(info.value), (part, str(info.value))
    # a fixed list of points gives its values' kinds; without a space the defaults alone decide
    fixed = SearchSpace.from_json([{"learning_rate": 0.1, "label_smoothing": None}, {"learning_rate": 0.2}])
    with pytest.raises(SearchSpaceError, match="fixed points"):
        check_point_types({"learning_rate": "0.1"}, fixed)
    check_point_types({"label_smoothing": 0.1}, fixed)  # only null known: not checked
    with pytest.raises(SearchSpaceError, match="self-tuning default"):
        check_point_types({"learning_rate": "0.1"}, None, {"learning_rate": 0.1})
