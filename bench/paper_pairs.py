"""Does memory help? Paired per-case comparisons of the paper-table runs already in bench/results/.

    python bench/paper_pairs.py

Each row compares two trained variants on the same 27 test cases (and the same 5 walking sources) at
600 s: the mean difference of relative L2 (negative: the first is better), on how many cases the
first is better, and the two-sided Wilcoxon signed-rank p-value (``paper_table.paired_difference``).
A row is read as a win only when the difference is negative with p < 0.05 on the test set. Nothing
is trained here; rows whose result files are missing are skipped and listed. Writes
bench/results/paper_pairs.json.
"""
from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from common import RESULTS, machine, write_result
from paper_table import paired_difference

# (label, (file, variant), (file, variant)); the file is bench/results/FILE.json
COMPARISONS = [
    ("room layers, ConvGRU, seed 0: hybrid vs markovian", ("paper_table", "hybrid"), ("paper_table", "markovian")),
    ("room layers, ConvGRU, seed 1: hybrid vs markovian", ("paper_table_seed1_hybrid", "hybrid"),
     ("paper_table_seed1_markovian", "markovian")),
    ("room layers, ConvGRU + global context: hybrid vs markovian", ("paper_table_global_context_hybrid", "hybrid"),
     ("paper_table_global_context_markovian", "markovian")),
    ("room layers, encoder-ConvLSTM: hybrid vs markovian", ("paper_table_encoder_lstm_hybrid", "hybrid"),
     ("paper_table_encoder_lstm_markovian", "markovian")),
    ("room layers, memory gate (from the Markovian), seed 0: hybrid vs markovian",
     ("paper_table_memory_gate", "hybrid"), ("paper_table_memory_gate", "markovian")),
    ("room layers, memory gate (from the Markovian), seed 1: hybrid vs markovian",
     ("paper_table_memory_gate_seed1", "hybrid"), ("paper_table_memory_gate_seed1", "markovian")),
    ("room layers: hybrid vs physics-only", ("paper_table", "hybrid"), ("paper_table", "physics_only")),
    ("room layers: markovian vs physics-only", ("paper_table", "markovian"), ("paper_table", "physics_only")),
    ("band alone, multiplicative: hybrid vs markovian", ("paper_table_no_layers_closure", "hybrid"),
     ("paper_table_no_layers_closure", "markovian")),
    ("band alone, additive peak-scale + context: hybrid vs markovian", ("paper_table_band_additive_hybrid", "hybrid"),
     ("paper_table_band_additive_markovian", "markovian")),
    ("band alone, additive mixed-scale + context: hybrid vs markovian", ("paper_table_band_mixed_hybrid", "hybrid"),
     ("paper_table_band_mixed_markovian", "markovian")),
    ("band alone, additive mixed-scale + context: hybrid vs physics-only", ("paper_table_band_mixed_hybrid", "hybrid"),
     ("paper_table_band_mixed_hybrid", "physics_only")),
    ("band alone, additive mixed-scale + context: markovian vs physics-only",
     ("paper_table_band_mixed_markovian", "markovian"), ("paper_table_band_mixed_markovian", "physics_only")),
]


def per_case(name: str, variant: str) -> tuple[list[float], list[float]] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if variant not in result["variants"]:
        return None
    return (result["variants"][variant]["test"]["rel_l2_final_per_case"],
            result["ood"][variant]["rel_l2_final_per_case"])


def main() -> None:
    console = Console()
    rows, missing = [], []
    for label, a, b in COMPARISONS:
        first, second = per_case(*a), per_case(*b)
        if first is None or second is None:
            missing.append(label)
            continue
        rows.append({"comparison": label, "first": list(a), "second": list(b),
                     "test": paired_difference(first[0], second[0]), "ood": paired_difference(first[1], second[1])})
    table = Table(title="paired differences of relative L2 at 600 s (first − second)")
    for col in ("comparison", "test: mean", "better on", "p", "walking: mean", "better on", "p", "reading"):
        table.add_column(col)
    for r in rows:
        t, o = r["test"], r["ood"]
        r["reading"] = ("first better" if t["mean_difference"] < 0 and t["wilcoxon_p"] < 0.05 else
                        "second better" if t["mean_difference"] > 0 and t["wilcoxon_p"] < 0.05 else "tie")
        table.add_row(r["comparison"], f"{t['mean_difference']:+.4f}", f"{t['better_on']}/{t['cases']}",
                      f"{t['wilcoxon_p']:.3f}", f"{o['mean_difference']:+.4f}", f"{o['better_on']}/{o['cases']}",
                      f"{o['wilcoxon_p']:.3f}", r["reading"])
    console.print(table)
    for label in missing:
        console.print(f"[yellow]skipped (result file or variant missing): {label}[/]")
    path = write_result("paper_pairs", {"comparisons": rows, "skipped": missing, "machine": machine()})
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
