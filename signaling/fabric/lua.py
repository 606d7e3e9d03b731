"""One typed description per Lua script: a dataclass whose fields are the script's KEYS and ARGV.

A Redis script reads its inputs by position (KEYS[5], ARGV[9]), and the caller must put them in the
same places. Here neither side writes a position: the description's fields, in order, make both the
`local <name> = KEYS[i]` / `ARGV[i]` lines the script's source begins with and, from an instance,
the lists the caller sends. A script body names its inputs and never indexes KEYS or ARGV itself
(tests/signaling/test_scripts.py holds every script to that).

    @script(body="return redis.call('HGET', room_key, peer_id)")
    class Look:
        room_key: str = key()
        peer_id: str = arg()

    Look(room_key="liaison:sig:room:r", peer_id="p1").keys()  # ["liaison:sig:room:r"]

A `part()` field holds another description without a script of its own (a fragment, such as the
ledger's step of a join): its keys and args are spliced in at that place, and its body replaces the
line `-- part: <field>` of this one's.
A `rest()` field, last, is a tuple that fills the remaining ARGV (a Lua table of that name).
"""

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, ClassVar, TypeVar, dataclass_transform

KEY, ARG, PART, REST = "key", "arg", "part", "rest"
T = TypeVar("T")


def key() -> Any:
    """A Redis key the script touches (KEYS)."""
    return field(metadata={"role": KEY})


def arg() -> Any:
    """A value the script is given (ARGV); Lua sees it as a string."""
    return field(metadata={"role": ARG})


def part() -> Any:
    """A fragment's description, whose keys and args take this place."""
    return field(metadata={"role": PART})


def rest() -> Any:
    """The remaining ARGV, as a tuple; the script sees a Lua table."""
    return field(metadata={"role": REST})


class Script:
    """What `script` gives a description: its inputs in order, its Lua source, and the call's lists."""

    __slots__ = ()
    KEYS: ClassVar[tuple[str, ...]]  # dotted field paths, in KEYS order
    ARGS: ClassVar[tuple[str, ...]]  # dotted field paths, in ARGV order (the rest excluded)
    REST: ClassVar[str | None]
    BODY: ClassVar[str]  # the body with its parts' bodies in place, no input lines
    SOURCE: ClassVar[str]  # what Redis runs
    _key_getters: ClassVar[tuple["attrgetter[Any]", ...]]
    _arg_getters: ClassVar[tuple["attrgetter[Any]", ...]]

    def keys(self) -> list[Any]:
        return [get(self) for get in self._key_getters]

    def args(self) -> list[Any]:
        values = [get(self) for get in self._arg_getters]
        if self.REST is not None:
            values += getattr(self, self.REST)
        return values


def _layout(cls: type) -> tuple[list[str], list[str], str | None, dict[str, str]]:
    """(key paths, arg paths, rest field, part -> its body) of a dataclass description."""
    keys: list[str] = []
    args: list[str] = []
    rest_name, bodies = None, {}
    described = fields(cls)
    for i, f in enumerate(described):
        role = f.metadata.get("role")
        if role == PART:
            inner = f.type
            if not (isinstance(inner, type) and issubclass(inner, Script)):
                raise TypeError(f"{cls.__name__}.{f.name}: a part() is typed with a description")
            keys += [f"{f.name}.{p}" for p in inner.KEYS]
            args += [f"{f.name}.{p}" for p in inner.ARGS]
            bodies[f.name] = inner.BODY
        elif role == REST:
            if i != len(described) - 1:
                raise TypeError(f"{cls.__name__}.{f.name}: rest() is the last field")
            rest_name = f.name
        elif role in (KEY, ARG):
            (keys if role == KEY else args).append(f.name)
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with key(), arg(), part() or rest()")
    return keys, args, rest_name, bodies


def _place(name: str, body: str, parts: dict[str, str]) -> str:
    for part_name, text in parts.items():
        marker = f"-- part: {part_name}\n"
        if body.count(marker) != 1:
            raise TypeError(f"{name}: its body places the part {part_name!r} once, as a line {marker!r}")
        body = body.replace(marker, text.strip("\n") + "\n")
    return body


@dataclass_transform(frozen_default=True, field_specifiers=(key, arg, part, rest, field))
def script(
    *, body: str, prelude: str = "", reserved: frozenset[str] = frozenset()
) -> Callable[[type[T]], type[T]]:
    """Make `cls` a description (a frozen dataclass) of the script `prelude`, inputs, `body`.
    `reserved` are names the prelude defines, which no input may shadow."""

    def make(cls: type[T]) -> type[T]:
        described = dataclass(frozen=True, slots=True)(cls)
        keys, args, rest_name, bodies = _layout(described)
        names = [p.rsplit(".", 1)[-1] for p in keys + args] + ([rest_name] if rest_name else [])
        clash = {n for n in names if names.count(n) > 1} | (set(names) & reserved)
        if clash:
            raise TypeError(f"{cls.__name__}: inputs named twice or shadowing the prelude: {sorted(clash)}")
        lines = [f"local {p.rsplit('.', 1)[-1]} = KEYS[{i}]" for i, p in enumerate(keys, 1)]
        lines += [f"local {p.rsplit('.', 1)[-1]} = ARGV[{i}]" for i, p in enumerate(args, 1)]
        if rest_name:
            lines.append(f"local {rest_name} = {{unpack(ARGV, {len(args) + 1})}}")
        full_body = _place(cls.__name__, body.strip("\n") + "\n", bodies)
        attrs = {
            "KEYS": tuple(keys),
            "ARGS": tuple(args),
            "REST": rest_name,
            "BODY": full_body,
            "SOURCE": "".join(f"{text}\n" for text in (prelude.strip("\n"), *lines) if text) + full_body,
            "_key_getters": tuple(attrgetter(p) for p in keys),
            "_arg_getters": tuple(attrgetter(p) for p in args),
        }
        for name, value in attrs.items():
            setattr(described, name, value)
        return described

    return make
