"""`crystalsearch embed`: export CrystalCLR representations of structures to .npy, .parquet or .csv.

Rows are in input order; inputs that cannot be read are reported (one line each) and skipped, and
the exit code is then 2. Next to ``FILE`` a sidecar ``FILE.json`` records the row ids, the encoder
(name, weights checksum, dimension, graph settings) and the failures; ``.parquet`` files carry the
same record in their schema metadata and ``.csv``/``.parquet`` files have an ``id`` column.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import typer

from crystalsearch.cli.common import add_command, examples, fail, one_line_errors, print_error, print_json


def _writer(data: bytes) -> Callable[[BinaryIO], object]:
    return lambda fh: fh.write(data)


if TYPE_CHECKING:
    import numpy as np

    from crystalsearch.model.embed import Encoder

FORMATS = (".npy", ".parquet", ".csv")
BATCH = 64
EXAMPLES = examples(
    "crystalsearch embed examples/*.cif --out embeddings.npy",
    "crystalsearch embed my_structures/ mp-149 --out embeddings.csv --encoder crystalclr",
    "crystalsearch embed candidates/ --out h.parquet --json   # needs pyarrow",
    "python -c \"import numpy, json; h = numpy.load('embeddings.npy'); "
    "ids = json.load(open('embeddings.npy.json'))['ids']\"",
)


def _format(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise fail(f"--out {out}: unknown format {suffix or '(no suffix)'!r}; use {', '.join(FORMATS)}")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise fail(f"--out {out}: writing .parquet needs pyarrow (pip install pyarrow); "
                       "or use .npy or .csv") from None  # fmt: skip
    return suffix


def encoder_record(enc: Encoder) -> dict[str, Any]:
    return {"name": enc.name, "hash": enc.hash, "dim": enc.dim, "radius": enc.radius,
            "max_neighbors": enc.max_neighbors}  # fmt: skip


def embed_in_order(structures: list[Any], enc: Encoder, *, progress: bool) -> np.ndarray:
    """Representations [n, dim] (float32), in order, with a progress bar on stderr."""
    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from crystalsearch.cli.common import err_console

    parts = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True, disable=not progress) as bar:
        task = bar.add_task("embedding", total=len(structures))
        for start in range(0, len(structures), BATCH):
            chunk = structures[start : start + BATCH]
            parts.append(np.asarray(enc.embed(chunk), dtype=np.float32))
            bar.advance(task, len(chunk))
    return np.concatenate(parts) if parts else np.zeros((0, enc.dim), dtype=np.float32)


def write(out: Path, fmt: str, ids: list[str], vectors: np.ndarray, record: dict[str, Any]) -> None:
    """Write the matrix (and the sidecar ``out.json``) atomically."""
    import numpy as np

    from crystalsearch.atomic import atomic_write

    if fmt == ".npy":
        buf = io.BytesIO()
        np.save(buf, vectors)
        atomic_write(out, _writer(buf.getvalue()))
    elif fmt == ".csv":
        text = io.StringIO()
        text.write(",".join(["id", *(f"h{i}" for i in range(vectors.shape[1]))]) + "\n")
        for sid, row in zip(ids, vectors, strict=True):
            quoted = '"' + sid.replace('"', '""') + '"'
            text.write(quoted + "," + ",".join(f"{v:.7g}" for v in row) + "\n")
        atomic_write(out, _writer(text.getvalue().encode()))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = [pa.array(ids, pa.string()), *(pa.array(vectors[:, i]) for i in range(vectors.shape[1]))]
        names = ["id", *(f"h{i}" for i in range(vectors.shape[1]))]
        table = pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(
            {"crystalsearch": json.dumps({k: v for k, v in record.items() if k != "ids"})}
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        atomic_write(out, _writer(sink.getvalue().to_pybytes()))
    atomic_write(Path(f"{out}.json"), _writer((json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode()))


@one_line_errors
def embed(
    queries: list[str] = typer.Argument(
        ..., metavar="QUERY...", help="Structure files (CIF, POSCAR, JSON), folders, globs or material ids."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        metavar="FILE",
        help="Output: .npy, .parquet (needs pyarrow) or .csv; FILE.json records ids, encoder and failures.",
    ),
    encoder: str = typer.Option(
        "default",
        "--encoder",
        help="default, crystalclr, crystalclr_cs, a model installed by `crystalsearch train`, a checkpoint "
        "folder, or random[:SEED].",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (schema: docs/cli.md)."),
) -> None:
    """Export the representations h of structures (one row per structure, in input order) with the
    encoder's name and weights checksum recorded; unreadable inputs are reported and skipped (exit 2)."""
    from crystalsearch.cli import encoders
    from crystalsearch.cli.common import err_console
    from crystalsearch.cli.schema import response
    from crystalsearch.errors import InputError
    from crystalsearch.io import read_items

    fmt = _format(out)
    enc = encoders.load(encoder)
    ids: list[str] = []
    structures: list[Any] = []
    entries: list[dict[str, Any]] = []
    for sid, item in read_items(queries):
        if isinstance(item, InputError):
            print_error(str(item))
            entries.append({"query": sid, "row": None, "error": str(item)})
            continue
        entries.append({"query": sid, "row": len(ids), "error": None})
        ids.append(sid)
        structures.append(item)
    if not structures:
        raise fail("nothing to embed: no input could be read")
    vectors = embed_in_order(structures, enc, progress=not json_out and err_console.is_terminal)
    record = {
        "schema_version": 1, "file": str(out), "format": fmt[1:], "rows": len(ids), "encoder": encoder_record(enc),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "ids": ids,
        "failed": [{"query": e["query"], "error": e["error"]} for e in entries if e["error"]],
    }  # fmt: skip
    write(out, fmt, ids, vectors, record)
    if json_out:
        meta = {"file": str(out), "sidecar": f"{out}.json", "format": fmt[1:], "shape": list(vectors.shape),
                "encoder": encoder_record(enc)}  # fmt: skip
        print_json(response("embed", entries, units={"h": "dimensionless representation (not normalised)"}, **meta))
    else:
        err_console.print(f"wrote {len(ids)} x {enc.dim} representations to {out} (ids, encoder {enc.name} "
                          f"{enc.hash}: {out}.json)", highlight=False)  # fmt: skip
    if any(e["error"] for e in entries):
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Attach the `embed` command."""
    add_command(app, embed, "embed", epilog=EXAMPLES)
