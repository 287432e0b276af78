"""Value records: a slotted class with ``__init__``, ``__repr__`` and ``__eq__`` from its annotations.

The same declarations as ``@dataclass(slots=True)`` (``@record``, ``@record(frozen=True)``,
``field(...)``, :func:`replace`), made for a tenth of the cost.  Why not dataclasses: every
process of a run defines its records before its first task can start, and a dataclass costs
230 us to define here (440 us frozen: a ``compile`` for each of ``__init__``, ``__repr__``,
``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``, and the class made twice for its
slots), and importing ``dataclasses`` imports ``inspect`` (5 ms).  Rank 0 defines about fifty
records: ~25 ms of a start-up of ~110 ms, every run; an agent rank ~10 of them.  Here a record
costs one class, and one ``compile`` when it is first made (its ``__init__``, which must stay as
fast as a dataclass's: a ``Start``, a ``TaskFinished`` and a ``TaskEnded`` are made for every task); ``__repr__``,
``__eq__`` and ``__hash__`` are shared functions that read the class's field names.

What it does not do: ordering, ``__post_init__``, keyword-only fields, ``dataclasses.fields``
introspection.  Annotations are read as written (strings under ``from __future__ import
annotations``) and never evaluated.  Records pickle and copy (frozen ones too).
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import dataclass_transform
else:

    def dataclass_transform(**_kwargs):
        return lambda decorator: decorator


T = TypeVar("T")

#: The default of a field that has none (a required argument).
MISSING: Any = type("MISSING", (), {"__repr__": lambda self: "MISSING"})()


class Field:
    """How one field behaves, where its annotation alone does not say: see :func:`field`."""

    __slots__ = ("default", "factory", "init", "compare", "repr")

    def __init__(self, default: Any, factory: Callable[[], Any] | None, init: bool, compare: bool, repr: bool):
        self.default, self.factory, self.init, self.compare, self.repr = default, factory, init, compare, repr


def field(
    *, default: Any = MISSING, default_factory: Callable[[], Any] | None = None, init: bool = True,
    compare: bool = True, repr: bool = True,
) -> Any:  # fmt: skip
    """A field's default made anew for each record (``default_factory``), or a field left out of
    ``__init__`` (set to its default), of ``==`` and ``hash`` (``compare``) or of ``repr``."""
    return Field(default, default_factory, init, compare, repr)


class FrozenRecordError(AttributeError):
    """A field of a frozen record was assigned or deleted."""


@dataclass_transform(field_specifiers=(field,))
def record(cls: type[T] | None = None, *, frozen: bool = False, eq: bool = True) -> Any:
    """Make ``cls`` a record (see the module docstring): ``@record``, ``@record(frozen=True)``.

    ``eq=False``: compared and hashed by identity, as any object.  Frozen records hash by their
    compared fields; others are unhashable, as dataclasses are.
    """

    def make(cls: type[T]) -> type[T]:
        return _make(cls, frozen, eq)

    return make if cls is None else make(cls)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of record ``obj`` with ``changes`` (made through ``__init__``, as ``dataclasses.replace``)."""
    cls = type(obj)
    values = {name: getattr(obj, name) for name in cls.__record_init__}  # type: ignore[attr-defined]
    values.update(changes)
    return cls(**values)


def asdict(obj: Any) -> dict[str, Any]:
    """The fields of record ``obj`` by name (one level: a field that is a record stays one)."""
    return {name: getattr(obj, name) for name in type(obj).__record_fields__}


def fields(cls_or_obj: Any) -> tuple[str, ...]:
    """The field names of a record class (or record), in order."""
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    return cls.__record_fields__


def is_record(obj: Any) -> bool:
    return hasattr(type(obj) if not isinstance(obj, type) else obj, "__record_fields__")


# -- the shared methods --------------------------------------------------------------
def _repr(self) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_repr__)
    return f"{type(self).__qualname__}({shown})"


def _eq(self, other):
    if other.__class__ is self.__class__:
        key = self.__record_key__
        return key(self) == key(other)
    return NotImplemented


def _hash(self) -> int:
    return hash(self.__record_key__(self))


def _frozen_setattr(self, name, value):
    raise FrozenRecordError(f"cannot assign to field {name!r} of frozen {type(self).__qualname__}")


def _frozen_delattr(self, name):
    raise FrozenRecordError(f"cannot delete field {name!r} of frozen {type(self).__qualname__}")


def _reduce(self):
    return _remake, (type(self), tuple(getattr(self, name) for name in self.__record_fields__))


def _remake(cls, values):
    """Unpickle (and copy) without ``__init__`` (its defaults and factories must not run again)
    and past a frozen record's ``__setattr__``."""
    obj = object.__new__(cls)
    for name, value in zip(cls.__record_fields__, values, strict=True):
        object.__setattr__(obj, name, value)
    return obj


def _no_key(_obj) -> tuple:
    return ()


# -- making one ----------------------------------------------------------------------
def _make(cls: type, frozen: bool, eq: bool) -> type:
    namespace = dict(cls.__dict__)
    annotations = namespace.get("__annotations__")
    if annotations is None:  # Python 3.14 may keep them behind __annotate__; none: no fields of its own
        annotations = cls.__annotations__ if "__annotate__" in namespace else {}
    own = [name for name, kind in annotations.items() if not _is_classvar(kind)]
    specs: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        specs.update(getattr(base, "__record_specs__", {}))
    for name in own:
        value = namespace.pop(name, MISSING)
        specs[name] = value if isinstance(value, Field) else Field(value, None, True, True, True)
    names = tuple(specs)
    inherited = {name for base in cls.__mro__[1:] for name in getattr(base, "__record_fields__", ())}
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    namespace["__slots__"] = tuple(name for name in own if name not in inherited)
    namespace["__record_specs__"] = specs
    namespace["__record_fields__"] = names
    namespace["__record_init__"] = tuple(name for name in names if specs[name].init)
    namespace["__record_repr__"] = tuple(name for name in names if specs[name].repr)
    namespace["__match_args__"] = namespace["__record_init__"]
    compared = tuple(name for name in names if specs[name].compare)
    namespace["__record_key__"] = staticmethod(attrgetter(*compared) if len(compared) > 1 else _single_key(compared))
    namespace["__init__"] = init = _init(cls.__qualname__, specs, frozen)
    namespace.setdefault("__repr__", _repr)
    namespace["__reduce__"] = _reduce
    if eq:
        namespace.setdefault("__eq__", _eq)
        if "__hash__" not in cls.__dict__ or cls.__dict__["__hash__"] is None:
            namespace["__hash__"] = _hash if frozen else None
    if frozen:
        namespace["__setattr__"] = _frozen_setattr
        namespace["__delattr__"] = _frozen_delattr
    made = type(cls)(cls.__name__, cls.__bases__, namespace)
    made.__qualname__ = cls.__qualname__  # (not in the class's dict: a nested class would lose its path)
    init.__record_owner__ = made
    return made


def _single_key(compared: tuple[str, ...]) -> Callable[[Any], Any]:
    """One compared field: a 1-tuple, so that the key is a tuple whatever the count."""
    if not compared:
        return _no_key
    name = compared[0]
    return lambda obj: (getattr(obj, name),)


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _init(qualname: str, specs: dict[str, Field], frozen: bool) -> Callable[..., None]:
    """``__init__``, compiled as a dataclass's is: one assignment a field, defaults bound as globals.

    Compiled at the record's first instantiation, not at its declaration: a run declares ~50 records
    before its first task and makes about half of them ever (the errors, Slurm's and the rarer events'
    stay unmade), and a compile costs ~150 us.  What is wrong in a declaration is still said at once:
    the source, checked here, is only compiled later.  The first call compiles, puts the compiled
    ``__init__`` on the class (``__record_owner__``, set once the class is made) and runs it."""
    scope: dict[str, Any] = {"MISSING": MISSING, "__builtins__": {}}
    params, body = ["self"], []
    assign = "__set(self, {name!r}, {value})" if frozen else "self.{name} = {value}"
    if frozen:
        scope["__set"] = object.__setattr__
    seen_default = False
    for name, spec in specs.items():
        if spec.factory is not None:
            scope[f"__f_{name}"] = spec.factory
            if spec.init:
                params.append(f"{name}=MISSING")
                value = f"__f_{name}() if {name} is MISSING else {name}"
            else:
                value = f"__f_{name}()"
            seen_default = True
        elif spec.default is not MISSING:
            if isinstance(spec.default, (list, dict, set)):  # one object shared by every record: say so now
                raise ValueError(f"{qualname}.{name}: a mutable default; use field(default_factory=...)")
            scope[f"__d_{name}"] = spec.default
            if spec.init:
                params.append(f"{name}=__d_{name}")
                value = name
            else:
                value = f"__d_{name}"
            seen_default = True
        elif not spec.init:
            raise TypeError(f"{qualname}.{name}: a field left out of __init__ needs a default")
        else:
            if seen_default:
                raise TypeError(f"{qualname}: field {name!r} without a default follows one with a default")
            params.append(name)
            value = name
        body.append(assign.format(name=name, value=value))
    source = f"def __init__({', '.join(params)}):\n    " + ("\n    ".join(body) or "pass") + "\n"

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: N807 (it is the class's __init__)
        exec(compile(source, f"<record {qualname}>", "exec"), scope)
        compiled = scope["__init__"]
        compiled.__qualname__ = f"{qualname}.__init__"
        __init__.__record_owner__.__init__ = compiled
        compiled(self, *args, **kwargs)

    __init__.__qualname__ = f"{qualname}.__init__"
    return __init__
