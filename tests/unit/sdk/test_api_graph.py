import pytest

from kubehatch.api.graph import (
    FieldProblem,
    find_cycle,
    format_path,
    step_graph_problems,
    topological_order,
)


def test_format_path() -> None:
    assert format_path(("steps", 1, "parents", 0)) == "steps[1].parents[0]"
    assert format_path(("concurrency", "maxRuns")) == "concurrency.maxRuns"
    assert format_path(()) == ""
    assert str(FieldProblem(("steps", 0), "bad")) == "steps[0]: bad"


def test_a_valid_graph_has_no_problems() -> None:
    assert step_graph_problems([("a", []), ("b", ["a"]), ("c", ["a", "b"])]) == []


def test_repeated_parent() -> None:
    (problem,) = step_graph_problems([("a", []), ("b", ["a", "a"])])
    assert problem == FieldProblem(
        ("steps", 1, "parents", 1), "parent 'a' is listed twice; list it once"
    )


def test_self_parent() -> None:
    (problem,) = step_graph_problems([("a", ["a"])])
    assert problem.message == "step 'a' lists itself as a parent; remove it"


def test_cycle_is_reported_once_from_the_earliest_step() -> None:
    edges = [("z", []), ("a", ["c"]), ("b", ["a"]), ("c", ["b"])]
    assert find_cycle(edges) == ["a", "c", "b", "a"]
    (problem,) = step_graph_problems(edges)
    assert problem.path == ("steps", 1, "parents")
    assert "('a' -> 'c' -> 'b' -> 'a'" in problem.message


def test_no_cycle() -> None:
    assert find_cycle([("a", []), ("b", ["a"])]) == []


def test_topological_order_keeps_declaration_order_for_ties() -> None:
    edges = [("x", []), ("b", ["a"]), ("a", []), ("c", ["a", "x"])]
    assert topological_order(edges) == ["x", "a", "b", "c"]


def test_topological_order_refuses_cycles() -> None:
    with pytest.raises(ValueError, match="cycle"):
        topological_order([("a", ["b"]), ("b", ["a"])])


def test_results_do_not_depend_on_hash_order() -> None:
    edges = [(f"s{i}", [f"s{j}" for j in range(i)]) for i in range(12)]
    assert topological_order(edges) == [f"s{i}" for i in range(12)]
