"""CIF reading: one structure per data block, with raw pre-checks before pymatgen builds anything.

Every data block that has cell parameters or atom sites is parsed separately (blocks with neither,
such as the ``data_global`` metadata blocks of Pauling File exports, are skipped). Before pymatgen's
``CifParser`` sees a block, its raw cell parameters and atom-site loop are checked
(:func:`crystalsearch.io.checks.check_cell_parameters`), which keeps pathological files — e.g. the
nearly flat cell that once sent pymatgen into an infinite loop — away from the symmetry code.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

from crystalsearch.errors import InputError
from crystalsearch.io.checks import check_cell_parameters
from crystalsearch.io.cif_fast import fast_structure

if TYPE_CHECKING:
    from pymatgen.core import Structure
    from pymatgen.io.cif import CifBlock

__all__ = ["check_numbers", "iter_cif_blocks"]

_BLOCK_SPLIT = re.compile(r"^\s*data_", flags=re.MULTILINE)
_NUMBER = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\(\d+\))?$")
_COORD_KEYS = (("_atom_site_fract_x", "fractional"), ("_atom_site_Cartn_x", "Cartesian"))
_CELL_LENGTHS = ("_cell_length_a", "_cell_length_b", "_cell_length_c")
_CELL_ANGLES = ("_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma")
_CELL_SETTING = ("_symmetry_cell_setting", "_space_group_crystal_system")
_CIF_TOKEN = re.compile(r"""'[^']*'(?=\s|$)|"[^"]*"(?=\s|$)|\S+""")
_NUMERIC_TAGS = (
    "_cell_length_", "_cell_angle_", "_cell_volume", "_atom_site_fract_", "_atom_site_cartn_",
    "_atom_site_occupancy", "_symmetry_int_tables_number", "_space_group_it_number",
)  # fmt: skip
_TRUNCATED_LOOP = "unparseable CIF: truncated or malformed loop_ (its values do not fill its columns)"


def one_line(exc: BaseException, *, limit: int = 200) -> str:
    """A short single-line description of an exception (for InputError reasons)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _split_blocks(text: str) -> list[tuple[str, str, int]]:
    """(block name, block text, line number of its ``data_``) for each block, keeping duplicate names."""
    blocks: list[tuple[str, str, int]] = []
    starts = list(_BLOCK_SPLIT.finditer(text))
    for i, match in enumerate(starts):
        chunk = text[match.end() : starts[i + 1].start() if i + 1 < len(starts) else len(text)]
        name = chunk.split(None, 1)[0] if chunk.strip() else ""
        if "powder_pattern" in name:  # diffraction data, no structure (pymatgen skips it too)
            continue
        blocks.append((name, f"data_{chunk}", text.count("\n", 0, match.end()) + 1))
    return blocks


def _raw_values(block_text: str, first_line: int) -> Iterator[tuple[str, str, int]]:
    """(tag, raw value, line number) of every tagged value in a block, read from the text itself.

    pymatgen's CifBlock silently drops characters it cannot parse, so numbers are checked here, on the
    raw text: quoted strings and ``;`` text fields are honoured, comments skipped.
    """
    loop_tags: list[str] = []
    in_loop_header = False
    column = 0
    pending: str | None = None
    in_text_field = False
    for offset, line in enumerate(block_text.splitlines()):
        number = first_line + offset
        if line.startswith(";"):
            in_text_field = not in_text_field
            if not in_text_field:  # a multi-line text value ends: it fills the pending tag or a loop column
                if pending is not None:
                    pending = None
                elif loop_tags:
                    in_loop_header = False
                    column += 1
            continue
        if in_text_field:
            continue
        for token in _CIF_TOKEN.findall(line):
            if token.startswith("#"):
                break
            lower = token.lower()
            if lower == "loop_":
                loop_tags, in_loop_header, column, pending = [], True, 0, None
            elif token.startswith("_"):
                if in_loop_header:
                    loop_tags.append(lower)
                else:
                    loop_tags, pending = [], lower
            elif lower.startswith(("data_", "save_", "global_", "stop_")):
                loop_tags, in_loop_header, pending = [], False, None
            elif pending is not None:
                yield pending, token, number
                pending = None
            elif loop_tags:
                in_loop_header = False
                yield loop_tags[column % len(loop_tags)], token, number
                column += 1


def check_numbers(block_text: str, *, first_line: int, source: str) -> None:
    """Reject numeric fields with characters other than digits, sign, point, exponent and ``(su)``."""
    for tag, raw, line in _raw_values(block_text, first_line):
        if not tag.startswith(_NUMERIC_TAGS):
            continue
        value = raw[1:-1] if raw[:1] in "'\"" and raw[-1:] == raw[:1] and len(raw) > 1 else raw
        if value in ("?", ".") or _NUMBER.match(value):
            continue
        raise InputError(source, f"line {line}: {tag} value {ascii(value)} is not a number")


def _cif_number(value: object) -> float | None:
    """Parse a CIF number such as ``9.143(2)``; None for missing (``?``/``.``) values."""
    if not isinstance(value, str):
        return None
    value = value.strip().strip("'\"")
    if value in ("", "?", "."):
        return None
    match = _NUMBER.match(value)
    if match is None:
        raise ValueError(value)
    return float(match.group(1))


def _is_structure_block(block: CifBlock) -> bool:
    return any(key.startswith(("_cell_length_", "_atom_site_")) for key in block.data)


def _precheck(block: CifBlock, *, source: str) -> None:
    """Reject blocks without a lattice or atoms, or with absurd raw cell parameters."""
    data = block.data
    missing = [key for key in _CELL_LENGTHS if _cif_number_or_none(data.get(key), key, source) is None]
    if missing:
        raise InputError(source, f"no lattice: missing cell parameter(s) {', '.join(missing)}")

    coord_values: list[str] = []
    for key, _kind in _COORD_KEYS:
        raw = data.get(key)
        if raw is not None:
            coord_values = [raw] if isinstance(raw, str) else list(raw)
            break
    else:
        raise InputError(source, "no atoms: no _atom_site_fract_x/y/z (or Cartn) atom-site loop")
    n_atoms = sum(1 for value in coord_values if value.strip() not in ("", "?", "."))
    if n_atoms == 0:
        raise InputError(source, "no atoms: the atom-site loop holds only '?' placeholders")

    lengths = tuple(_cif_number_or_none(data.get(key), key, source) for key in _CELL_LENGTHS)
    angles = tuple(_cif_number_or_none(data.get(key), key, source) for key in _CELL_ANGLES)
    if any(angle is None for angle in angles):
        if not any(data.get(key) for key in _CELL_SETTING):
            missing = [key for key, angle in zip(_CELL_ANGLES, angles, strict=True) if angle is None]
            raise InputError(source, f"no lattice: missing cell parameter(s) {', '.join(missing)}")
        return  # pymatgen infers the angles from the crystal system; check_structure runs afterwards
    a, b, c = (float(x) for x in lengths if x is not None)
    alpha, beta, gamma = (float(x) for x in angles if x is not None)
    check_cell_parameters((a, b, c), (alpha, beta, gamma), source=source, min_atoms=n_atoms)


def _cif_number_or_none(value: object, key: str, source: str) -> float | None:
    try:
        return _cif_number(value)
    except ValueError:
        raise InputError(source, f"unparseable cell parameter {key} = {value!r}") from None


def _parse_block(block_text: str, *, source: str) -> Structure:
    """Build one structure from one block's text with pymatgen, warnings silenced."""
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parser = CifParser.from_str(block_text)
            structures = parser.parse_structures(primitive=False, on_error="raise")
        except InputError:
            raise
        except Exception as exc:  # pymatgen raises KeyError/ValueError/IndexError/ZeroDivisionError...  # noqa: BLE001 - pymatgen raises any type on malformed input: one InputError line
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            if isinstance(cause, KeyError):
                raise InputError(source, f"unparseable CIF: missing CIF field {cause}") from None
            raise InputError(source, f"unparseable CIF: {one_line(cause)}") from None
    messages: list[str] = list(getattr(parser, "warnings", []))
    dropped = [msg.split(" parsed as")[0] for msg in messages if msg.rstrip().endswith("parsed as")]
    if dropped:
        raise InputError(source, f"unsupported atom type(s) {', '.join(sorted(set(dropped)))} (not an element symbol)")
    if not structures:
        raise InputError(source, "unparseable CIF: no structure in the data block")
    return structures[0]


def iter_cif_blocks(text: str, *, source: str) -> Iterator[tuple[str, Structure | InputError]]:
    """Yield ``(source_id, structure or error)`` for each structure block of a CIF text.

    The id is ``source`` for a file with a single structure block and ``source#blockname`` when there
    are several (duplicate block names get ``-2``, ``-3``... suffixes). Errors that concern the whole
    file (no ``data_`` block, unparseable tokens) are raised; errors of one block are yielded so that
    the other blocks can still be read.
    """
    from pymatgen.io.cif import CifBlock

    chunks = _split_blocks(text)
    if not chunks:
        raise InputError(source, "not a CIF file: no data_ block found")
    parsed: list[tuple[str, str, CifBlock | InputError]] = []
    for name, chunk, first_line in chunks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                block = CifBlock.from_str(chunk)
            except Exception as exc:  # noqa: BLE001 - pymatgen raises any type on malformed input: one InputError line
                label = source if len(chunks) == 1 else f"{source}#{name}"
                if isinstance(exc, ZeroDivisionError) or "zip()" in str(exc) or "multiple" in str(exc):
                    raise InputError(label, _TRUNCATED_LOOP) from None
                raise InputError(label, f"unparseable CIF: {one_line(exc)}") from None
        if _is_structure_block(block):
            label = source if len(chunks) == 1 else f"{source}#{name}"
            item: CifBlock | InputError = block
            try:
                check_numbers(chunk, first_line=first_line, source=label)
            except InputError as err:
                item = err  # reported for this block; the file's other blocks are still read
            parsed.append((name, chunk, item))
    if not parsed:
        raise InputError(source, "no crystal structure found: no data block has cell parameters or atom sites")

    seen: dict[str, int] = {}
    for name, chunk, parsed_block in parsed:
        seen[name] = seen.get(name, 0) + 1
        suffix = "" if seen[name] == 1 else f"-{seen[name]}"
        block_id = source if len(parsed) == 1 else f"{source}#{name}{suffix}"
        try:
            if isinstance(parsed_block, InputError):
                raise InputError(block_id, parsed_block.reason)
            _precheck(parsed_block, source=block_id)
            fast = fast_structure(parsed_block)
            yield block_id, fast if fast is not None else _parse_block(chunk, source=block_id)
        except InputError as err:
            yield block_id, err
