"""`crystalsearch plot`: figures of the paper (Figure 3: UMAP of embeddings by compound class)."""

from __future__ import annotations

from pathlib import Path

import typer

from crystalsearch.cli.common import add_command, console, examples, one_line_errors, print_json, sub_app

plot_app = sub_app("Figures: UMAP maps of embeddings and fingerprints.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach the `plot` command group."""
    app.add_typer(plot_app, name="plot")


@one_line_errors
def umap_cmd(
    encoder: str = typer.Option(
        "crystalclr_cs",
        "--encoder",
        help="A shipped name, NAME=PATH, or a PATH (labelled CrystalCLR+CS); random[:SEED] is untrained.",
    ),
    dataset: str = typer.Option("mp_elasticity", "--dataset", help="Shipped dataset to map."),
    max_structures: int = typer.Option(0, "--max-structures", min=0, help="Random subsample of N (0 = all)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the subsample and of UMAP."),
    n_neighbors: int = typer.Option(15, "--n-neighbors", min=2, help="UMAP n_neighbors."),
    min_dist: float = typer.Option(0.1, "--min-dist", min=0.0, help="UMAP min_dist."),
    device: str = typer.Option("cpu", "--device", help="Device for the encoder's forward passes."),
    out: Path = typer.Option(
        Path("crystalsearch-results"),
        "--out",
        help="Results folder for figure3_umap.png (default: crystalsearch-results in the working directory).",
    ),  # fmt: skip
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Figure 3: UMAP of CrystalCLR+CS embeddings and Magpie features side by side, by compound class."""
    from crystalsearch.data.datasets import DATASETS
    from crystalsearch.errors import InputError
    from crystalsearch.evaluate.umap_plot import UmapConfig, plot_umap
    from crystalsearch.progress import Progress

    if dataset not in DATASETS:
        raise InputError("--dataset", f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    from crystalsearch.cli.encoders import installed_model

    name, sep, spec = encoder.partition("=")
    folder = installed_model(encoder) if not sep else None
    if folder is not None:  # a model installed by `crystalsearch train`
        name, spec = encoder, str(folder)
    elif not sep:  # a shipped name or random[:SEED] labels itself; a bare path is taken as CrystalCLR+CS
        named = encoder in ("crystalclr", "crystalclr_cs", "default") or encoder.startswith("random")
        name, spec = (encoder if named else "crystalclr_cs"), encoder
    config = UmapConfig(
        encoder=spec, encoder_name=name, dataset=dataset, max_structures=max_structures, seed=seed,
        n_neighbors=n_neighbors, min_dist=min_dist, device=device,
    )  # fmt: skip
    with Progress(not json_out) as progress:
        summary = plot_umap(config, out=out, progress=progress)
    if json_out:
        print_json(summary, command="plot umap")
        return
    pur = summary["purity"]
    console.print(f"[bold green]wrote[/] {summary['path']} ({summary['n_structures']:,} crystals)")
    console.print(f"10-NN class purity: embeddings {pur['embedding']:.3f}, Magpie {pur['magpie']:.3f} "
                  f"(chance {summary['purity_chance']:.3f})")  # fmt: skip


add_command(plot_app, umap_cmd, "umap", epilog=examples(
    "crystalsearch plot umap",
    "crystalsearch plot umap --encoder crystalclr --dataset mp_elasticity --max-structures 2000 --out figures",
))  # fmt: skip
