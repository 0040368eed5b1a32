"""Similarity search on a small real index (a few hundred shipped MP structures, untrained encoder)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from crystalsearch.catalog import build as build_mod
from crystalsearch.catalog import defaults
from crystalsearch.catalog.build import add_to_index, build_index
from crystalsearch.catalog.db import Material
from crystalsearch.catalog.defaults import CATALOG_TAG
from crystalsearch.catalog.filters import Filters, parse_where
from crystalsearch.catalog.manifest import DB_FILE, INDEX_FILE, JOURNAL, read_manifest
from crystalsearch.catalog.scoring import BOTH_WEIGHT
from crystalsearch.cli.index import index_summary
from crystalsearch.data import datasets
from crystalsearch.data.entries import Entry, merge_records
from crystalsearch.errors import IndexFileError, InputError
from crystalsearch.identity.catalog import Catalog
from crystalsearch.io import ReadReport, read_structure
from crystalsearch.model.embed import Encoder
from crystalsearch.structure.fingerprint import DIM as FP_DIM
from crystalsearch.structure.fingerprint import VERSION as FP_VERSION

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
EXAMPLE_IDS = {"NaCl": "mp-22862", "Si": "mp-149", "GaAs": "mp-2534", "BaTiO3": "mp-2998", "LiFePO4": "mp-19017",
               "TiO2_rutile": "mp-2657"}  # fmt: skip


def small_entries(n: int = 250) -> list[Entry]:
    """The example materials, KCl and the first ``n`` shipped MP structures, merged with elasticity."""
    mp = datasets.load("mp_structures").records
    by_id = {r.material_id: r for r in mp}
    wanted = [*EXAMPLE_IDS.values(), "mp-23193", *(r.material_id for r in mp[:n])]
    chosen = [by_id[i] for i in dict.fromkeys(wanted)]
    ids = {r.material_id for r in chosen}
    elastic = [r for r in datasets.load("mp_elasticity").records if r.material_id in ids]
    return merge_records([("mp_structures", chosen), ("mp_elasticity", elastic)])


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["CRYSTALSEARCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    return Encoder.random(seed=0)


@pytest.fixture(scope="session")
def entries() -> list[Entry]:
    return small_entries()


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory, entries: list[Entry], encoder: Encoder) -> Path:
    out = tmp_path_factory.mktemp("idx") / "small"
    build_index(entries, encoder=encoder, out=out, progress=False, chunk_size=64)
    return out


@pytest.fixture(scope="session")
def catalog(index_dir: Path, encoder: Encoder) -> Catalog:
    return Catalog.open(index_dir, encoder=encoder)


@pytest.fixture()
def index_copy(index_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(index_dir, dest)
    return dest


def brute_force(
    catalog: Catalog, q: np.ndarray, rows: list[int], k: int, exclude: int | None = None, *, w: float = BOTH_WEIGHT
) -> list[str]:
    """Reference ranking, row by row: w * ((cos_s + [same prototype]) / 2) + (1 - w) * cos_h."""
    vecs = catalog.vectors.vectors()
    cand = [r for r in rows if r != exclude]
    meta = catalog.db.materials(list(range(len(catalog))))
    own = next((m.prototype for m in meta.values() if np.array_equal(vecs[m.id], q)), None)
    scores = []
    for r in cand:
        chem = float(vecs[r, :128] @ q[:128])
        struct = 0.5 * float(vecs[r, 128:] @ q[128:]) + 0.5 * float(own is not None and meta[r].prototype == own)
        scores.append(w * struct + (1 - w) * chem)
    order = sorted(range(len(cand)), key=lambda i: (-scores[i], cand[i]))[:k]
    return [meta[cand[i]].material_id for i in order]


# --- building -----------------------------------------------------------------------------------------
def test_build_writes_one_row_per_material(index_dir: Path, entries: list[Entry], catalog: Catalog) -> None:
    manifest = read_manifest(index_dir)
    assert manifest.count == len(entries) == len(catalog) == catalog.db.count()
    assert manifest.encoder.hash == Encoder.random(seed=0).hash and manifest.encoder.dim == 128
    assert manifest.metric == "inner_product" and manifest.faiss_factory == "Flat"
    assert set(manifest.files) == {INDEX_FILE, DB_FILE} and manifest.units["bulk_modulus_vrh"] == "GPa"
    assert not index_dir.with_name("small.partial").exists()
    ids = [m.material_id for m in catalog.db.materials(list(range(len(catalog)))).values()]
    assert len(ids) == len(set(ids))
    # an MP entry in both shipped MP datasets is ONE row with the properties of both
    row = catalog.db.materials([catalog.row_of("mp-22862")])[catalog.row_of("mp-22862")]  # type: ignore[list-item,index]
    assert row.source == "mp_structures,mp_elasticity"
    assert (
        row.band_gap == pytest.approx(5.0033) and row.bulk_modulus_vrh is not None and row.shear_modulus_vrh is not None
    )
    # each row is [h | s]: the encoder's representation and the structure fingerprint, each of unit length
    vectors = catalog.vectors.vectors()
    assert catalog.chem_dim == 128 and catalog.struct_dim == FP_DIM and vectors.shape[1] == 128 + FP_DIM
    np.testing.assert_allclose(np.linalg.norm(vectors[:, :128], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors[:, 128:], axis=1), 1.0, atol=1e-5)
    assert row.prototype == "AB_cF8_225_m-3m_m-3m" and manifest.versions["fingerprint"] == FP_VERSION
    with sqlite3.connect(index_dir / DB_FILE) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_symmetry_and_derived_columns(catalog: Catalog) -> None:
    expect = {"mp-22862": ("Fm-3m", 225, "cubic"), "mp-149": ("Fd-3m", 227, "cubic"),
              "mp-19017": ("Pnma", 62, "orthorhombic"), "mp-2657": ("P4_2/mnm", 136, "tetragonal")}  # fmt: skip
    for mid, (symbol, number, system) in expect.items():
        row = catalog.row_of(mid)
        assert row is not None
        m = catalog.db.materials([row])[row]
        assert (m.spacegroup_symbol, m.spacegroup_number, m.crystal_system) == (symbol, number, system)
    nacl = catalog.structure("mp-22862")
    row = catalog.db.materials([catalog.row_of("mp-22862")])[catalog.row_of("mp-22862")]  # type: ignore[list-item,index]
    assert row.density == pytest.approx(nacl.density, rel=1e-6)
    assert row.volume_per_atom == pytest.approx(nacl.volume / len(nacl), rel=1e-9)
    assert (row.chemsys, row.nelements, row.nsites) == ("Cl-Na", 2, 2)


def test_symmetry_table_agrees_with_spglib(entries: list[Entry]) -> None:
    from crystalsearch.structure.prototype import labels_many, shipped_labels
    from crystalsearch.structure.symmetry import symmetry_of

    assert len(shipped_labels()) > 195_000  # every shipped cell: mp2025, mp_structures, mp_elasticity
    some = entries[::40]
    looked_up = [lab.symmetry() for lab in labels_many(e.cell() for e in some)]
    assert looked_up == [symmetry_of(*e.cell()) for e in some]


# --- searching ----------------------------------------------------------------------------------------
def test_file_query_finds_its_material_first(catalog: Catalog) -> None:
    hits = catalog.similar(str(EXAMPLES / "NaCl.cif"), k=5)
    assert hits[0].material_id == "mp-22862" and hits[0].similarity > 0.9999
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(a.similarity >= b.similarity for a, b in zip(hits, hits[1:]))


def test_indexed_id_excludes_itself(catalog: Catalog) -> None:
    hits = catalog.similar("mp-22862", k=10)
    assert len(hits) == 10 and "mp-22862" not in [h.material_id for h in hits]
    q = catalog.vectors.vector(catalog.row_of("mp-22862"))  # type: ignore[arg-type]
    assert [h.material_id for h in hits] == brute_force(
        catalog, q, list(range(len(catalog))), 10, catalog.row_of("mp-22862")
    )


def test_k_larger_than_index(catalog: Catalog) -> None:
    assert len(catalog.similar("mp-149", k=100_000)) == len(catalog) - 1
    assert len(catalog.similar(read_structure(EXAMPLES / "Si.cif"), k=100_000)) == len(catalog)
    with pytest.raises(InputError):
        catalog.similar("mp-149", k=0)


def test_unknown_ids_and_files(catalog: Catalog) -> None:
    with pytest.raises(InputError, match="unknown material id"):
        catalog.similar("mp-99999999")
    report = ReadReport()
    results = catalog.search(["mp-99999999", str(EXAMPLES / "Si.cif"), "no/such/file.cif"], k=3, report=report)
    assert [r.error is None for r in results] == [False, True, False]
    assert len(results[1].hits) == 3 and report.exit_code == 2 and len(report.failed) == 2


def _python_filter(m: Material, f: Filters) -> bool:
    els = set(m.chemsys.split("-"))
    return (all(e in els for e in f.elements) and not els & set(f.exclude_elements)
            and (f.spacegroup is None or m.spacegroup_number == f.spacegroup)
            and (f.max_sites is None or m.nsites <= f.max_sites))  # fmt: skip


@pytest.mark.parametrize(
    "kwargs",
    [
        {"elements": "O"},
        {"elements": "Li,O", "exclude_elements": "Co"},
        {"spacegroup": "Fm-3m"},
        {"spacegroup": "225", "max_sites": 2},
        {"exclude_elements": "O,S,Se,Te,N", "max_sites": 4},
        {"elements": "Ba"},
    ],
)
def test_filters_are_exact(catalog: Catalog, kwargs: dict[str, object]) -> None:
    f = Filters.make(**kwargs)  # type: ignore[arg-type]
    everything = catalog.db.materials(list(range(len(catalog))))
    passing = [r for r, m in everything.items() if _python_filter(m, f)]
    assert passing, "test filter must match something"
    for k in (1, 5, len(passing) + 3):
        hits = catalog.similar("mp-2998", k=k, **kwargs)  # type: ignore[arg-type]
        exclude = catalog.row_of("mp-2998")
        expected = brute_force(catalog, catalog.vectors.vector(exclude), passing, k, exclude)  # type: ignore[arg-type]
        assert [h.material_id for h in hits] == expected
        assert len(hits) == min(k, len([r for r in passing if r != exclude]))


def test_filter_returns_k_even_when_unfiltered_top_k_all_fail(catalog: Catalog) -> None:
    unfiltered = catalog.similar("mp-22862", k=10)
    worst = [h.material_id for h in catalog.similar("mp-22862", k=len(catalog))][-8:]
    rows = catalog.db.row_ids(worst)
    where = " or ".join(f"material_id == {m!r}" for m in rows)
    hits = catalog.similar("mp-22862", k=5, where=where)
    assert len(hits) == 5 and not {h.material_id for h in hits} & {h.material_id for h in unfiltered}


def _pugh(m: Material) -> bool:
    k, g = m.bulk_modulus_vrh, m.shear_modulus_vrh
    return k is not None and bool(g) and k / g > 1.75


WHERE_CASES = [
    ("band_gap > 1", lambda m: m.band_gap > 1),
    ("band_gap > 1 and bulk_modulus_vrh < 100", lambda m: m.band_gap > 1 and (m.bulk_modulus_vrh or 1e9) < 100),
    ("1 < band_gap <= 3 or nsites == 2", lambda m: 1 < m.band_gap <= 3 or m.nsites == 2),
    ("not (crystal_system == 'cubic')", lambda m: m.crystal_system != "cubic"),
    ("K_VRH / G_VRH > 1.75", _pugh),
    (
        "bulk_modulus_vrh is not None and e_form < -1.5",
        lambda m: m.bulk_modulus_vrh is not None and m.formation_energy_per_atom < -1.5,
    ),
    ("spacegroup == 225 and density > -1e9", lambda m: m.spacegroup_number == 225),
    # SQL style: =, AND/OR/NOT, IN, BETWEEN, LIKE, IS NULL
    ("band_gap > 1 AND crystal_system = 'cubic'", lambda m: m.band_gap > 1 and m.crystal_system == "cubic"),
    ("spacegroup_number IN (225, 227) OR nsites <> 2", lambda m: m.spacegroup_number in (225, 227) or m.nsites != 2),
    ("crystal_system NOT IN ('cubic', 'hexagonal')", lambda m: m.crystal_system not in ("cubic", "hexagonal")),
    ("band_gap BETWEEN 1 AND 3", lambda m: 1 <= m.band_gap <= 3),
    (
        "NOT band_gap BETWEEN 1 AND 3 AND bulk_modulus_vrh IS NULL",
        lambda m: not 1 <= m.band_gap <= 3 and m.bulk_modulus_vrh is None,
    ),
    ("formula LIKE 'Na%'", lambda m: m.formula.lower().startswith("na")),
    (
        "formula NOT LIKE '%O%' and (K_VRH + G_VRH) / 2 > 30",
        lambda m: (
            "o" not in m.formula.lower()
            and m.bulk_modulus_vrh is not None
            and (m.bulk_modulus_vrh + m.shear_modulus_vrh) / 2 > 30
        ),
    ),
]


@pytest.mark.parametrize(("where", "check"), WHERE_CASES)
def test_where_expressions(catalog: Catalog, where: str, check: object) -> None:
    ids = set(catalog.db.ids_where(parse_where(where)).tolist())
    everything = catalog.db.materials(list(range(len(catalog))))
    assert ids == {r for r, m in everything.items() if check(m)}  # type: ignore[operator]
    assert ids


@pytest.mark.parametrize(
    "bad",
    [
        "band_gap > 1; DROP TABLE materials",
        "band_gap > 1 -- comment",
        "__import__('os').system('echo hacked')",
        "band_gap.real > 1",
        "structure == 'x'",
        "sqlite_master > 0",
        "id > 3",
        "band_gap > (lambda: 1)()",
        "band_gap in (1, 'a')",
        "band_gap = NULL",
        "'1' == '1'",
        "band_gap > '1'",
        "formula > 'A'",
        "band_gap",
        "band_gap > 1 and " * 200 + "band_gap > 1",
        "",
    ],
)
def test_where_rejects_unsafe_or_invalid(bad: str) -> None:
    with pytest.raises(InputError) as info:
        Filters.make(where=bad) if bad else parse_where(bad)
    assert str(info.value).startswith("--where: ") and "\n" not in str(info.value)


def test_where_string_values_are_bound_not_pasted(catalog: Catalog, index_copy: Path) -> None:
    with Catalog.open(index_copy) as cat:
        n = len(cat)
        assert cat.similar("mp-149", where='formula == "NaCl\' OR 1=1; DROP TABLE materials; --"') == []
        assert [h.material_id for h in cat.similar("mp-149", where="formula == 'NaCl'")] == ["mp-22862"]
        assert cat.db.count() == n


def test_bad_filter_values() -> None:
    for kwargs, option in (({"elements": "Li,Xx"}, "--elements"), ({"spacegroup": "Q9"}, "--spacegroup"),
                           ({"spacegroup": "231"}, "--spacegroup"), ({"max_sites": 0}, "--max-sites")):  # fmt: skip
        with pytest.raises(InputError, match=f"^{option}"):
            Filters.make(**kwargs)  # type: ignore[arg-type]
    assert Filters.make(spacegroup="P4_2/mnm").spacegroup == Filters.make(spacegroup="P42/mnm").spacegroup == 136


# --- is it known? -------------------------------------------------------------------------------------
def test_known_exact_strained_and_column_replaced(catalog: Catalog) -> None:
    nacl = read_structure(EXAMPLES / "NaCl.cif")
    strained = nacl.copy()
    strained.apply_strain(0.03)  # a copy relaxed with another functional: same symmetry, 9% more volume
    distorted = nacl.copy()
    distorted.apply_strain([0.03, -0.02, 0.01])  # no longer cubic: another space group, not the same material
    one_k = nacl.copy()
    one_k.replace(0, "K")  # column replacement of one Na: K Na3 Cl4, not in the index
    all_k = nacl.copy()
    all_k.replace_species({"Na": "K"})  # every Na -> K: rock-salt KCl, mp-23193
    results = catalog.search([nacl, strained, one_k, all_k, distorted], k=5, known=True)
    assert results[0].known_as == ("mp-22862",) and results[0].verdict.startswith("known as mp-22862 (RMS ")
    assert results[0].hits[0].same_structure is True and not any(h.same_structure for h in results[0].hits[1:])
    assert results[1].known_as == ("mp-22862",) and results[1].hits[0].material_id == "mp-22862"
    assert (
        results[2].verdict == "novel"
        and results[2].known_as == ()
        and not any(h.same_structure for h in results[2].hits)
    )
    assert results[3].known_as == ("mp-23193",)
    assert results[4].verdict == "novel" and results[4].known is not None and results[4].known.spacegroup != 225
    assert "0 in space group" in results[4].known.reason
    for r in results:  # the same material first, then the others in similarity order
        same = [h.same_structure for h in r.hits]
        assert same == sorted(same, reverse=True)
        sims = [h.similarity for h in r.hits if not h.same_structure]
        assert sims == sorted(sims, reverse=True)


def test_known_ranks_its_own_material_first(catalog: Catalog) -> None:
    """With a known verdict the query's own entry is listed first whatever its score, an own entry outside the
    candidates is scored and added, and a filter that excludes it keeps it out."""
    nacl = read_structure(EXAMPLES / "NaCl.cif")
    (item,) = catalog._resolve([nacl], None)
    own = catalog.row_of("mp-22862")
    ranked = catalog._ranked(item, k=6, allowed=None, by="both", weight=None)
    others = [x for x in ranked if x.row != own][:4]
    demoted = [*others[:2], *(x for x in ranked if x.row == own), *others[2:]]  # own entry third
    reordered, verdict = catalog._judged(item, demoted, k=3, allowed=None, by="both", weight=None)
    assert verdict.best is not None and verdict.best.material_id == "mp-22862"
    assert [x.row for x in reordered] == [own, others[0].row, others[1].row]
    added, _ = catalog._judged(item, others, k=3, allowed=None, by="both", weight=None)  # own entry missing
    assert added[0].row == own and added[0].score == pytest.approx(next(x.score for x in ranked if x.row == own))
    kept_out, _ = catalog._judged(item, others, k=3, allowed=np.array([x.row for x in others]), by="both",
                                  weight=None)  # fmt: skip
    assert own not in [x.row for x in kept_out]


def test_known_respects_filters_and_self_exclusion(catalog: Catalog) -> None:
    (r,) = catalog.search(["mp-22862"], k=3, known=True)  # an indexed id is known as itself, left out of its hits
    assert r.known_as == ("mp-22862",) and "mp-22862" not in [h.material_id for h in r.hits]
    (r,) = catalog.search([read_structure(EXAMPLES / "NaCl.cif")], k=3, known=True,
                          filters=Filters.make(exclude_elements="Na"))  # fmt: skip
    assert r.known_as == ("mp-22862",) and "mp-22862" not in [h.material_id for h in r.hits] and len(r.hits) == 3
    assert r.known is not None and r.known.to_dict()["material_id"] == "mp-22862"


# --- integrity ----------------------------------------------------------------------------------------
def test_encoder_hash_mismatch_is_refused(index_dir: Path) -> None:
    other = Encoder.random(seed=1)
    with pytest.raises(IndexFileError) as info:
        Catalog.open(index_dir, encoder=other)
    message = str(info.value)
    assert Encoder.random(seed=0).hash in message and other.hash in message


@pytest.mark.parametrize("name", [DB_FILE, INDEX_FILE])
def test_checksum_corruption_detected(index_copy: Path, name: str) -> None:
    Catalog.open(index_copy).close()  # verified once (remembered)
    path = index_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stat = path.stat()
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="checksum mismatch"):
        Catalog.open(index_copy)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, mtime and inode as when verified
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with pytest.raises(IndexFileError, match="checksum mismatch"):
        Catalog.open(index_copy)  # the default, fast check sees it too (ctime and sampled blocks)
    with pytest.raises(IndexFileError, match="checksum mismatch"):
        Catalog.open(index_copy, verify="full")
    with pytest.raises(IndexFileError, match="checksum mismatch"):
        index_summary(index_copy)  # `index info` hashes every file


def test_rewrite_in_place_seen_where_ctime_is_coarse(index_copy: Path) -> None:
    """A file system whose ctime did not move (coarse clock): the sampled blocks still differ."""
    import json

    from crystalsearch.catalog import manifest as manifest_mod

    Catalog.open(index_copy).close()
    path = index_copy / INDEX_FILE
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF  # a byte of the first vectors
    path.write_bytes(bytes(data))
    stamps_file = manifest_mod._stamp_file()
    stamps = json.loads(stamps_file.read_text())
    key = str(path.resolve())
    st = path.stat()
    stamps[key][:4] = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]  # as if nothing had moved
    stamps_file.write_text(json.dumps(stamps))
    with pytest.raises(IndexFileError, match="checksum mismatch"):
        Catalog.open(index_copy)


def test_missing_and_malformed_files(index_copy: Path) -> None:
    (index_copy / INDEX_FILE).unlink()
    with pytest.raises(IndexFileError, match="missing index file"):
        Catalog.open(index_copy)
    (index_copy / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFileError, match="unreadable manifest"):
        Catalog.open(index_copy)


def test_resume_after_interrupted_build(tmp_path: Path, entries: list[Entry], encoder: Encoder,
                                        monkeypatch: pytest.MonkeyPatch, catalog: Catalog) -> None:  # fmt: skip
    from crystalsearch.catalog import embedding

    real = embedding.embed_chunk
    calls: list[int] = []

    def dying(part, enc, advance):  # type: ignore[no-untyped-def]
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands in for kill -9 after two chunks were saved
        calls.append(len(part))
        return real(part, enc, advance)

    monkeypatch.setattr(embedding, "embed_chunk", dying)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        build_index(entries, encoder=encoder, out=out, progress=False, chunk_size=64)
    assert not out.exists() and len(list((tmp_path / "resumed.partial").glob("chunk_*.npz"))) == 2
    calls.clear()
    monkeypatch.setattr(embedding, "embed_chunk", lambda p, e, a: (calls.append(len(p)), real(p, e, a))[1])
    manifest = build_index(entries, encoder=encoder, out=out, progress=False, chunk_size=64)
    assert sum(calls) == len(entries) - 128  # only the missing chunks were embedded
    assert manifest.count == len(entries) and not (tmp_path / "resumed.partial").exists()
    with Catalog.open(out) as resumed:
        assert resumed.db.count() == len(resumed) == len(entries)
        np.testing.assert_allclose(resumed.vectors.vectors(), catalog.vectors.vectors(), atol=1e-6)


def test_changed_inputs_do_not_resume(tmp_path: Path, entries: list[Entry], encoder: Encoder) -> None:
    out = tmp_path / "x"
    work = tmp_path / "x.partial"
    work.mkdir()
    (work / "plan.json").write_text('{"fingerprint": "other"}')
    (work / "chunk_00000.npz").write_bytes(b"garbage")
    build_index(entries[:20], encoder=encoder, out=out, progress=False, chunk_size=8)
    with Catalog.open(out) as cat:
        assert len(cat) == 20


# --- incremental add, WAL readers ---------------------------------------------------------------------
def test_add_is_incremental(index_copy: Path, catalog: Catalog) -> None:
    n = len(catalog)
    from crystalsearch.data.entries import entries_from_structures
    from crystalsearch.io import read_structures

    new = entries_from_structures(read_structures(str(EXAMPLES / "*.cif")))
    report = add_to_index(new, index=index_copy, progress=False)
    assert len(report.added) == 6 and report.manifest.count == n + 6
    again = add_to_index(new, index=index_copy, progress=False)
    assert again.added == () and len(again.skipped) == 6
    with Catalog.open(index_copy) as cat:
        assert len(cat) == cat.db.count() == n + 6
        hits = cat.similar(str(EXAMPLES / "NaCl.cif"), k=2)
        assert {h.material_id for h in hits} == {"mp-22862", str(EXAMPLES / "NaCl.cif")}
        assert cat.similar(str(EXAMPLES / "GaAs.cif"), k=1, where="source == 'user'")[0].material_id.endswith(
            "GaAs.cif"
        )


def test_wal_readers_keep_searching_during_add(index_copy: Path) -> None:
    reader = Catalog.open(index_copy)
    n = len(reader)
    writer = sqlite3.connect(index_copy / DB_FILE)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE materials SET band_gap = 99 WHERE material_id = 'mp-149'")
    hits = reader.similar("mp-22862", k=3, where="band_gap >= 0")  # a reader during an open write transaction
    assert len(hits) == 3 and reader.db.ids_where(parse_where("band_gap == 99")).size == 0
    writer.rollback()
    writer.close()
    errors: list[BaseException] = []
    done = threading.Event()

    def search_loop() -> None:
        try:
            while not done.is_set():
                assert len(reader.similar("mp-2998", k=5, where="nsites < 100")) == 5
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=search_loop)
    thread.start()
    try:
        add_to_index([(f"user-{i}", read_structure(p)) for i, p in enumerate(sorted(EXAMPLES.glob("*.cif")))],
                     index=index_copy, progress=False)  # fmt: skip
    finally:
        done.set()
        thread.join()
    assert not errors
    assert len(reader) == n  # the open reader still sees its snapshot
    with Catalog.open(index_copy) as fresh:
        assert len(fresh) == n + 6 and fresh.row_of("user-0") == n
    reader.close()


def test_interrupted_add_is_rolled_back(index_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crystalsearch.catalog.faiss_index import VectorIndex

    n = read_manifest(index_copy).count

    def crash(self, path):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(VectorIndex, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        add_to_index([("user-x", read_structure(EXAMPLES / "Si.cif"))], index=index_copy, progress=False)
    assert (index_copy / JOURNAL).exists()
    monkeypatch.undo()
    with Catalog.open(index_copy) as cat:  # recovers: rows of the unfinished add are gone
        assert len(cat) == cat.db.count() == n and cat.row_of("user-x") is None
    assert not (index_copy / JOURNAL).exists()


# --- the default index --------------------------------------------------------------------------------
def test_default_index_built_once_in_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: list[Entry]
) -> None:
    from crystalsearch.model import checkpoint

    monkeypatch.setenv("CRYSTALSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(checkpoint, "shipped_models_dir", lambda: tmp_path / "no-models")  # no default encoder
    built: list[int] = []
    real = build_mod.build_index

    def small_build(source, **kw):  # type: ignore[no-untyped-def]
        assert source == "all"
        built.append(1)
        return real(entries[:40], **kw)

    monkeypatch.setattr(build_mod, "build_index", small_build)
    notes: list[str] = []
    with Catalog.open("default", progress=False, notify=notes.append) as cat:
        expected = tmp_path / "cache" / "index" / f"{CATALOG_TAG}-{Encoder.random(seed=0).hash}"
        assert len(cat) == 40 and cat.path == expected
    assert any("no trained default encoder" in n for n in notes) and any("Building" in n for n in notes)
    with Catalog.open("default", progress=False, notify=notes.append) as cat:
        assert len(cat) == 40
    assert built == [1]


def test_reader_columns_match_orm_schema() -> None:
    from crystalsearch.catalog.db import Material
    from crystalsearch.catalog.reader import MATERIAL_COLUMNS

    assert tuple(c.name for c in Material.__table__.columns) == MATERIAL_COLUMNS


def test_cold_similar_path_imports_nothing_heavy(index_dir: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from crystalsearch.cli import app\n"
        f"try: app(['similar', {str(EXAMPLES / 'NaCl.cif')!r}, '--index', {str(index_dir)!r}, '--json'])\n"
        "except SystemExit as e: assert e.code == 0, e.code\n"
        "bad = [m for m in ('sqlalchemy', 'sklearn', 'umap', 'matminer', 'pandas') if m in sys.modules]\n"
        "print('HEAVY', bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


@pytest.mark.slow
def test_build_killed_with_sigkill_resumes(tmp_path: Path, entries: list[Entry], catalog: Catalog) -> None:
    import signal
    import subprocess
    import sys
    import time

    from crystalsearch.catalog import embedding

    out = tmp_path / "killed"
    code = (
        "import time, sys\n"
        "from pathlib import Path\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_search import small_entries\n"
        "from crystalsearch.model.embed import Encoder\n"
        "from crystalsearch.catalog.build import build_index\n"
        f"build_index(small_entries(), encoder=Encoder.random(seed=0), out=Path({str(out)!r}),"
        " progress=lambda n: time.sleep(0.3), chunk_size=32)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    work = tmp_path / "killed.partial"
    deadline = time.monotonic() + 240
    while len(list(work.glob("chunk_*.npz"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(work.glob("chunk_*.npz")))
    assert 3 <= done_before < -(-len(entries) // 32) and not out.exists()
    calls: list[int] = []
    real = embedding.embed_chunk
    try:
        embedding.embed_chunk = lambda p, e, a: (calls.append(len(p)), real(p, e, a))[1]  # type: ignore[assignment]
        build_index(entries, encoder=Encoder.random(seed=0), out=out, progress=False, chunk_size=32)
    finally:
        embedding.embed_chunk = real  # type: ignore[assignment]
    assert sum(calls) == len(entries) - 32 * done_before
    with Catalog.open(out) as cat:
        assert len(cat) == cat.db.count() == len(entries)
        assert len(set(cat.db.row_ids(e.material_id for e in entries))) == len(entries)
        np.testing.assert_allclose(cat.vectors.vectors(), catalog.vectors.vectors(), atol=1e-6)


def test_approximate_factory_reports_recall(tmp_path: Path, entries: list[Entry], encoder: Encoder) -> None:
    manifest = build_index(entries, encoder=encoder, out=tmp_path / "hnsw", faiss_factory="HNSW32", progress=False)
    assert manifest.faiss_factory == "HNSW32" and manifest.recall_at_10 is not None
    assert 0.5 <= manifest.recall_at_10 <= 1.0
    with Catalog.open(tmp_path / "hnsw") as cat:
        assert not cat.vectors.exact and len(cat.similar("mp-22862", k=5)) == 5
        exact = [h.material_id for h in cat.similar("mp-2998", k=4, elements="O")]
        q = cat.vectors.vector(cat.row_of("mp-2998"))  # type: ignore[arg-type]
        passing = cat.db.ids_where(Filters.make(elements="O").condition()).tolist()
        assert exact == brute_force(cat, q, passing, 4, cat.row_of("mp-2998"))
    from crystalsearch.errors import CrystalSearchError

    with pytest.raises(CrystalSearchError, match="faiss-factory"):
        build_index(entries[:20], encoder=encoder, out=tmp_path / "ivf", faiss_factory="IVF256,Flat", progress=False)


@pytest.mark.slow
def test_worker_processes_give_the_same_index(tmp_path: Path, entries: list[Entry], catalog: Catalog) -> None:
    manifest = build_index(entries, encoder=Encoder.random(seed=0), out=tmp_path / "w", progress=False, chunk_size=64,
                           workers=2)  # fmt: skip
    assert manifest.count == len(entries)
    with Catalog.open(tmp_path / "w") as cat:
        np.testing.assert_allclose(cat.vectors.vectors(), catalog.vectors.vectors(), atol=1e-5)
        assert cat.db.materials([5])[5] == catalog.db.materials([5])[5]


def test_shipped_index_used_when_built_with_the_default_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: list[Entry], encoder: Encoder
) -> None:
    monkeypatch.setenv("CRYSTALSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(defaults, "default_encoder", lambda notify: encoder)
    monkeypatch.setattr(defaults, "shipped_index_dir", lambda: tmp_path / "models" / "index")
    build_index(entries[:30], encoder=encoder, out=tmp_path / "models" / "index", progress=False)
    with Catalog.open("default", progress=False) as cat:
        assert cat.path == tmp_path / "models" / "index" and len(cat) == 30
    other = Encoder.random(seed=2)
    monkeypatch.setattr(defaults, "default_encoder", lambda notify: other)
    monkeypatch.setattr(build_mod, "build_index", lambda source, **kw: build_index(entries[:10], **kw))
    notes: list[str] = []
    with Catalog.open("default", progress=False, notify=notes.append) as cat:  # shipped index is for another encoder
        assert cat.path == tmp_path / "cache" / "index" / f"{CATALOG_TAG}-{other.hash}" and len(cat) == 10
    assert any("shipped index is for encoder" in n for n in notes)
