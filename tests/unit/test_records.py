"""Records (mpilauncher.records) behave as the slotted dataclasses they replace, and keep start-up free of them."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from typing import ClassVar

import pytest

from mpilauncher import records
from mpilauncher.records import FrozenRecordError, field, record


@record
class Finished:
    task_id: int
    exit_code: int
    node: int | None = None
    notes: list[str] = field(default_factory=list)


@record(frozen=True)
class Where:
    host: str
    cores: tuple[int, ...] = ()
    label: str = field(default="", compare=False, repr=False)
    seen: int = field(default=0, init=False)
    KIND: ClassVar[str] = "place"


@record(eq=False)
class Handle:
    name: str


class Outer:
    @record(frozen=True)
    class Inner:
        x: int


@record
class Base:
    a: int


@record
class Derived(Base):
    b: int = 2


def test_init_with_positions_keywords_defaults_and_a_fresh_default_from_its_factory_each_time():
    first, second = Finished(1, 0), Finished(task_id=2, exit_code=3, node=4)
    assert (first.task_id, first.exit_code, first.node, first.notes) == (1, 0, None, [])
    assert (second.task_id, second.exit_code, second.node) == (2, 3, 4)
    first.notes.append("x")
    assert Finished(1, 0).notes == []  # not the same list
    assert Finished(1, 0, notes=["y"]).notes == ["y"]
    with pytest.raises(TypeError):
        Finished(1)  # a required field missing
    with pytest.raises(TypeError):
        Finished(1, 0, bogus=1)


def test_slotted_with_no_instance_dict():
    assert Finished.__slots__ == ("task_id", "exit_code", "node", "notes")
    with pytest.raises(AttributeError):
        Finished(1, 0).other = 1  # type: ignore[attr-defined]
    assert not hasattr(Finished(1, 0), "__dict__")


def test_repr_and_equality_as_a_dataclass_has_them():
    assert repr(Finished(1, 0)) == "Finished(task_id=1, exit_code=0, node=None, notes=[])"
    assert Finished(1, 0) == Finished(1, 0) and Finished(1, 0) != Finished(1, 1)
    assert Finished(1, 0) != (1, 0, None, [])  # another type is never equal
    assert repr(Where("h", (1,), label="x")) == "Where(host='h', cores=(1,), seen=0)"  # repr=False: not shown
    assert Where("h", label="a") == Where("h", label="b")  # compare=False: not compared
    assert repr(Outer.Inner(1)) == "Outer.Inner(x=1)"


def test_a_mutable_record_is_unhashable_a_frozen_one_hashes_by_its_compared_fields():
    with pytest.raises(TypeError):
        hash(Finished(1, 0))
    assert hash(Where("h", (1, 2), label="a")) == hash(Where("h", (1, 2), label="b"))
    assert len({Where("h"), Where("h"), Where("g")}) == 2
    one, same = Handle("x"), Handle("x")
    assert one != same and len({one, same}) == 2  # eq=False: identity


def test_a_frozen_record_refuses_assignment_and_deletion():
    where = Where("h")
    with pytest.raises(FrozenRecordError):
        where.host = "g"  # type: ignore[misc]
    with pytest.raises(FrozenRecordError):
        del where.host
    assert isinstance(FrozenRecordError("x"), AttributeError)


def test_init_false_takes_its_default_and_classvars_are_no_fields():
    assert Where("h").seen == 0
    with pytest.raises(TypeError):
        Where("h", seen=1)  # type: ignore[call-arg]
    assert records.fields(Where) == ("host", "cores", "label", "seen")
    assert Where.KIND == "place"


@pytest.mark.parametrize("value", [Finished(1, 0, 2, ["a"]), Where("h", (1,), label="x"), Outer.Inner(3)])
def test_pickle_and_copies_round_trip_frozen_and_nested_records_too(value):
    for again in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
        assert again == value and type(again) is type(value)
        assert [getattr(again, f) for f in records.fields(value)] == [getattr(value, f) for f in records.fields(value)]


def test_replace_and_asdict():
    assert records.replace(Finished(1, 0, 2), exit_code=5) == Finished(1, 5, 2)
    assert records.replace(Where("h", label="x"), host="g").label == "x"
    assert records.asdict(Where("h")) == {"host": "h", "cores": (), "label": "", "seen": 0}
    assert records.is_record(Where) and records.is_record(Where("h")) and not records.is_record(1)


def test_match_by_position():
    match Finished(7, 1):
        case Finished(7, code):
            assert code == 1
        case _:
            pytest.fail("no match")


def test_a_subclass_adds_its_fields_after_its_base_s():
    assert Derived(1) == Derived(1, 2) and Derived(1, 3).b == 3
    assert records.fields(Derived) == ("a", "b") and Derived.__slots__ == ("b",)


def test_init_is_compiled_at_the_first_instantiation_and_behaves_the_same_from_then_on():
    """Declaring a record compiles nothing (start-up); the first record made compiles its ``__init__`` and
    puts it on the class, whether it was made through the class or a plain subclass of it."""

    @record(frozen=True)
    class Lazy:
        a: int
        b: str = "b"

    class Plain(Lazy):
        pass

    first = Lazy.__init__
    assert Plain(1) == Plain(1, "b") and Plain(2).a == 2  # first made through the subclass
    assert Lazy.__init__ is not first and "a" in Lazy.__init__.__code__.co_varnames
    assert Lazy.__init__.__qualname__.endswith("Lazy.__init__")
    assert Lazy(3, b="c") == Lazy(3, "c") and repr(Lazy(4)).endswith("Lazy(a=4, b='b')")
    with pytest.raises(TypeError):
        Lazy()  # the compiled signature, as a dataclass's

    @record
    class Unmade:
        x: int

    with pytest.raises(TypeError):
        Unmade(1, 2)  # too many arguments: told at the very first call too
    assert Unmade(5).x == 5


def test_declaration_errors_are_told_when_the_class_is_made():
    with pytest.raises(TypeError, match="without a default follows"):

        @record
        class Bad:
            a: int = 0
            b: int

    with pytest.raises(TypeError, match="needs a default"):

        @record
        class AlsoBad:
            a: int = field(init=False)

    with pytest.raises(ValueError, match="mutable default"):

        @record
        class Shared:
            items: list = []  # noqa: RUF012 (the mistake the check is for)


def test_start_up_imports_no_dataclasses():
    """The point of records: the modules every rank imports before its first task (the CLI and
    launch; rank 0's too) define ~50 records, which as dataclasses cost ~20 ms and inspect's import."""
    code = (
        "import sys, mpilauncher.cli, mpilauncher.launch, mpilauncher.rank0, mpilauncher.runtime.master;"
        "print(sorted(m for m in ('dataclasses', 'inspect') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
