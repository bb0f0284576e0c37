#!/usr/bin/env python3
"""Regenerate the result tables in README.md and docs/*.md from bench/results/*.json.

A generated table sits between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->``; the function
registered under NAME below builds it from the results files it names. Text outside the markers is
never touched, so the prose around a table is edited by hand and the numbers in it by the benchmarks.

    python docs/build.py                 rewrite every table in place
    python docs/build.py --check         exit 1, naming each stale table, where a rewrite would change it

``--results DIR`` (default ``bench/results``) and ``--root DIR`` (the folder holding README.md and
docs/, default this repository) point it at copies; tests/test_docs.py does so. ``--check`` also fails
on a table in docs/*.md outside any markers (typed by hand), an unknown or unclosed marker, and a
registered table that no page shows. Plain Python: json and pathlib, nothing to install.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MINUS = "\u2212"
ALL_RESULTS = "*.json"  # a table that reads every results file names this as its source

Json = dict
Rows = list[list[str]]


@dataclass(frozen=True)
class Table:
    """A generated table: its marker name, the results files it reads, and its builder."""
    name: str
    sources: tuple[str, ...]
    build: Callable[..., str]


TABLES: dict[str, Table] = {}


def table(name: str, *sources: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Register ``fn(*parsed_sources) -> markdown`` as the builder of table ``name``."""
    def register(fn: Callable[..., str]) -> Callable[..., str]:
        TABLES[name] = Table(name, sources, fn)
        return fn
    return register


# ---------------------------------------------------------------------------------------------------
# formatting

def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _minus(text: str) -> str:
    return text.replace("-", MINUS)


def fixed(x: float, digits: int) -> str:
    return _minus(f"{x:.{digits}f}")


def signed(x: float, digits: int) -> str:
    """+0.0021, −0.0010; exactly zero is "0"."""
    return "0" if x == 0 else _minus(f"{x:+.{digits}f}")


def sig(x: float, n: int = 3) -> str:
    return _minus(f"{x:.{n}g}")


def sci(x: float, digits: int = 0) -> str:
    """2e-14, 2.47e-3: no padded exponent."""
    mantissa, exponent = f"{x:.{digits}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def seconds(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def percent(fraction: float, digits: int = 0) -> str:
    return f"{100 * fraction:.{digits}f} %"


def times(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}×"


def machine_label(machine: Json) -> str:
    """"2-core CPU" or the GPU's model ("H100" for "NVIDIA H100 80GB HBM3")."""
    if machine.get("cuda"):
        return machine["cuda"].removeprefix("NVIDIA ").split()[0]
    return f"{machine['cpu_count']}-core CPU"


# ---------------------------------------------------------------------------------------------------
# reference solver: docs/reference.md

@table("reference-scaling", "reference.json")
def reference_scaling(ref: Json) -> str:
    """room.toml, 30 s of transport at three cell sizes and two precisions (bench/reference.py)."""
    rows = [[f"{r['cell_size']} m", r["dtype"], f"{r['cells']:,}", str(r["steps"]), seconds(r["transport_s"]),
             f"{r['cell_updates_per_s'] / 1e6:.2g} M", f"{r['peak_rss_mib']:.0f}", sci(r["mass_balance_rel"])]
            for r in ref["scaling"]]
    return markdown(["cell size", "dtype", "cells", "steps", "transport s", "cell-updates/s", "peak RSS MiB",
                     "mass balance"], rows)


@table("reference-devices", "reference.json", "reference_gpu.json")
def reference_devices(cpu: Json, gpu: Json) -> str:
    """The same room runs on the CPU and on the GPU (reference_gpu.json: same script, device auto)."""
    c, g = machine_label(cpu["machine"]), machine_label(gpu["machine"])
    rows = [[f"{a['cell_size']} m", a["dtype"], f"{a['cells']:,}", f"{a['steps']:,} / {b['steps']:,}",
             seconds(a["transport_s"]), seconds(b["transport_s"]),
             f"{b['cell_updates_per_s'] / 1e6:.2g} M", sci(b["mass_balance_rel"])]
            for a, b in zip(cpu["scaling"], gpu["scaling"], strict=True)]
    return markdown(["cell size", "dtype", "cells", f"steps ({c} / {g})", f"{c} transport s", f"{g} transport s",
                     f"{g} cell-updates/s", f"{g} mass balance"], rows)


@table("reference-hall", "reference.json", "reference_gpu.json")
def reference_hall(cpu: Json, gpu: Json) -> str:
    """hall.toml, Navier–Stokes flow, 600 s, eager and with the compiled step, on both machines."""
    rows = []
    for data in (cpu, gpu):
        for key, step in (("hall", "eager"), ("hall_compiled", "compiled")):
            r = data[key]
            rows.append([machine_label(data["machine"]), f"{step}, {r['steps']:,} steps", seconds(r["flow_s"]),
                         seconds(r["transport_s"]),
                         seconds(r["compile_s"]) if r["compiled"] else "—", seconds(r["total_s"]),
                         f"{r['peak_rss_mib']:.0f}",
                         sci(r["mass_balance_rel"])])
    grid = "×".join(str(n) for n in cpu["hall"]["grid"])
    return markdown([f"hall ({grid} cells)", "step", "flow s", "transport s",
                     "compile s", "total s", "peak RSS MiB", "mass balance"], rows)


PEER_SOLVERS = (("eager Euler", "ours torch euler"), ("compiled Euler", "ours compiled euler"),
                ("compiled RKL2, 40 steps", "ours compiled rkl2 n=40"),
                ("compiled Chebyshev tol 1e-6", "ours compiled chebyshev tol=1e-06"),
                ("compiled Chebyshev tol 1e-8", "ours compiled chebyshev tol=1e-08"))


@table("reference-peer", "reference_peer.json")
def reference_peer(peer: Json) -> str:
    """Speed-up over py-pde at equal error (its time interpolated on its error-vs-time curve), 1 thread."""
    matched = {(r["m"], r["solver"], r["dtype"]): r for r in peer["matched_error"]}
    runs = {r["m"]: r for r in reversed(peer["runs"])
            if r["solver"].startswith("py-pde") and r["threads"] == 1 and not r["numba_parallel"]}
    rows = []
    for m in sorted({m for m, _, _ in matched}):
        ref = runs[m]
        row = [f"{ref['cells']:,}", f"{sci(ref['error'], 2)} / {sig(ref['wall_s'], 2)}"]
        for _, solver in PEER_SOLVERS:
            pair = (matched[m, solver, dtype]["speedup_ours_vs_peer"] for dtype in ("float64", "float32"))
            row.append(" / ".join(times(x, 2) for x in pair))
        row.append(sci(matched[m, PEER_SOLVERS[3][1], "float64"]["error"], 2))
        rows.append(row)
    return markdown(["cells", "py-pde error / s"] + [f"{label} f64 / f32" for label, _ in PEER_SOLVERS]
                    + ["Chebyshev 1e-6 error"], rows)


# ---------------------------------------------------------------------------------------------------
# surrogate: docs/surrogate.md

VARIANT_NAMES = {"hybrid": "hybrid", "markovian": "markovian", "physics_only": "physics-only",
                 "data_only": "data-only"}
CLOSURE_NAMES = {"convgru": "ConvGRU", "encoder_lstm": "encoder–ConvLSTM"}


def _times(run: Json) -> list[str]:
    return sorted(run["test"]["per_time"], key=float)


def _paper_row(label: str, variant: Json, ood: Json) -> list[str]:
    t = _times(variant)
    final = t[-1]
    test = variant["test"]
    return ([label] + [fixed(test["per_time"][k]["rel_l2_mean"], 3) for k in t]
            + [sig(test["per_time"][final]["mse_mean"]), fixed(test["spearman_final_mean"], 4),
               fixed(ood["per_time"][final]["rel_l2_mean"], 3),
               f"{fixed(ood['spearman_final_mean'], 4)} ({fixed(ood['spearman_over_time_mean'], 4)})",
               f"{variant['train_seconds']:.0f}"])


@table("paper-table", "paper_table.json", "paper_table_no_layers.json")
def paper_table(layers: Json, band: Json) -> str:
    """The four variants with the room layers, and the band-alone physics-only model before them."""
    closure = CLOSURE_NAMES.get(layers["config"]["closure"], layers["config"]["closure"])
    labels = {"hybrid": f"hybrid ({closure} memory)", "markovian": "markovian",
              "physics_only": "physics-only (room layers)", "data_only": "data-only"}
    rows = [_paper_row(labels[v], layers["variants"][v], layers["ood"][v]) for v in labels if v in layers["variants"]]
    rows.append(_paper_row("*before: physics-only, band alone*", band["variants"]["physics_only"],
                           band["ood"]["physics_only"]))
    t = _times(layers["variants"]["hybrid"])
    d = layers["data"]
    header = ([f"variant ({d['test']} test cases)"] + [f"rel. L2 {k} s" for k in t]
              + [f"MSE {t[-1]} s", f"Spearman {t[-1]} s", f"OOD rel. L2 {t[-1]} s",
                 f"OOD Spearman {t[-1]} s (over time)", "train s"])
    return markdown(header, rows)


def _reading(comparison: Json) -> str:
    reading = comparison["reading"]
    for side in ("first", "second"):
        reading = reading.replace(side, VARIANT_NAMES[comparison[side][1]])
    return reading


@table("paper-pairs", "paper_pairs.json")
def paper_pairs(pairs: Json) -> str:
    """Case-by-case comparisons at the final time: mean paired difference (first − second), how often
    the first is better, two-sided Wilcoxon p, on the test cases and on the walking sources."""
    rows = []
    for c in pairs["comparisons"]:
        files = ", ".join(f"`{f}`" for f in dict.fromkeys((c["first"][0], c["second"][0])))
        row = [c["comparison"], files]
        for part in ("test", "ood"):
            p = c[part]
            row += [signed(p["mean_difference"], 4), f"{p['better_on']}/{p['cases']}", sig(p["wilcoxon_p"], 2)]
        rows.append(row + [_reading(c)])
    return markdown(["comparison", "result files", "test: mean diff", "better on", "p", "walking: mean diff",
                     "better on", "p", "reading"], rows)


CLOSURE_RUNS = (("paper_table.json", ("physics_only", "hybrid", "markovian")),
                ("paper_table_physics.json", ("physics_only",)),
                ("paper_table_seed1_hybrid.json", ("hybrid",)), ("paper_table_seed1_markovian.json", ("markovian",)),
                ("paper_table_global_context_hybrid.json", ("hybrid",)),
                ("paper_table_global_context_markovian.json", ("markovian",)),
                ("paper_table_encoder_lstm_hybrid.json", ("hybrid",)),
                ("paper_table_encoder_lstm_markovian.json", ("markovian",)),
                ("paper_table_memory_gate.json", ("hybrid",)), ("paper_table_memory_gate_seed1.json", ("hybrid",)),
                ("paper_table_no_layers.json", ("physics_only",)),
                ("paper_table_no_layers_closure.json", ("hybrid", "markovian")),
                ("paper_table_band_additive_hybrid.json", ("hybrid",)),
                ("paper_table_band_additive_markovian.json", ("markovian",)),
                ("paper_table_band_mixed_hybrid.json", ("hybrid",)),
                ("paper_table_band_mixed_markovian.json", ("markovian",)))


@table("closure-variants", *(name for name, _ in CLOSURE_RUNS))
def closure_variants(*runs: Json) -> str:
    """Every closure experiment, one row per trained variant: final-time test and walking-source error,
    the epoch early stopping kept (−1: none beat the starting weights) and its validation loss."""
    rows = []
    for (name, variants), data in zip(CLOSURE_RUNS, runs, strict=True):
        for v in variants:
            run = data["variants"][v]
            final = _times(run)[-1]
            rows.append([f"`{name.removesuffix('.json')}`", VARIANT_NAMES[v],
                         fixed(run["test"]["per_time"][final]["rel_l2_mean"], 4),
                         fixed(run["test"]["spearman_final_mean"], 3),
                         fixed(data["ood"][v]["per_time"][final]["rel_l2_mean"], 4),
                         fixed(run["best_epoch"], 0), fixed(run["best_validation_loss"], 4),
                         f"{run['train_seconds']:.0f}"])
    return markdown(["run", "variant", "test rel. L2 600 s", "test Spearman 600 s", "walking rel. L2 600 s",
                     "best epoch", "best validation loss", "train s"], rows)


@table("memory-gate", "paper_table_memory_gate.json", "paper_table_memory_gate_seed1.json")
def memory_gate(*runs: Json) -> str:
    """The gated hybrid started from the trained Markovian: the gate γ after each epoch."""
    rows = []
    for data in runs:
        gated, markovian = data["variants"]["hybrid"], data["variants"]["markovian"]
        rows.append([str(data["config"]["seed"]), " / ".join(f"{g:.3f}" for g in gated["memory_fraction_by_epoch"]),
                     fixed(gated["best_epoch"], 0), fixed(gated["best_validation_loss"], 5),
                     fixed(markovian["best_validation_loss"], 5)])
    return markdown(["seed", "γ after each epoch", "best epoch", "best validation loss (gated)",
                     "Markovian's"], rows)


@table("paper-grid", "paper_grid.json")
def paper_grid(grid: Json) -> str:
    """Test case 0 on the training grid against the same case at half the cell size, restricted."""
    coarse, fine = ("×".join(map(str, grid[k]["grid"])) for k in ("coarse", "fine"))
    rows = [[f"{t} s", fixed(c["rel_l2_coarse_vs_fine"], 3), fixed(c["spearman"], 4)]
            for t, c in sorted(grid["comparison"].items(), key=lambda kv: float(kv[0]))]
    return markdown(["time", f"rel. L2, {coarse} vs {fine}", "Spearman"], rows)


def _speed_row(data: Json) -> list[str]:
    s = data["speed"]
    e, f = s["eager"], s["fused"]
    label = machine_label(data["machine"])
    if not data["machine"].get("cuda"):
        label += f", {data['config']['threads']} thread"
    return [label, seconds(s["reference_transport_s"]),
            f"{seconds(e['surrogate_one_case_s'])} / {seconds(f['surrogate_one_case_s'])} "
            f"({times(e['one_case_speedup'])} / {times(f['one_case_speedup'], 0)})",
            f"{s['batch']:,}: {seconds(e['surrogate_batch_s'])} / {seconds(f['surrogate_batch_s'])}",
            f"{times(e['throughput_ratio'], 0)} / {times(f['throughput_ratio'], 0)}",
            f"{f['surrogate_scenarios_per_s']:,.0f}", seconds(s["fused_compile_s"])]


@table("surrogate-speed-hall", "paper_table.json", "paper_table_gpu.json")
def surrogate_speed_hall(cpu: Json, gpu: Json) -> str:
    """The layered hall surrogate (float32) against the reference transport (float64, eager)."""
    return markdown(["device", "reference transport s", "one case, eager / fused s (speed-up)",
                     "batched cases: eager / fused s", "throughput vs reference, eager / fused",
                     "fused scenarios/s", "compile s"], [_speed_row(cpu), _speed_row(gpu)])


@table("surrogate-speed-default", "surrogate_speed.json")
def surrogate_speed_default(speed: Json) -> str:
    """The hall campaign's surrogate against the reference on its default path (fused), one process."""
    hall = speed.get("hall")
    if hall is None:
        return "_not measured: run `python bench/surrogate_speed.py`_"
    rows = []
    for dtype in ("float64", "float32"):
        h = hall[dtype]
        e, f = h["eager"], h["fused"]
        rows.append([f"{machine_label(speed['machine'])}, {hall['threads']} threads", dtype,
                     seconds(h["reference_transport_s"]) + (" (fused)" if h["reference_compiled"] else " (eager)"),
                     f"{seconds(e['surrogate_one_case_s'])} / {seconds(f['surrogate_one_case_s'])} "
                     f"({times(e['one_case_speedup'])} / {times(f['one_case_speedup'])})",
                     f"{hall['batch']:,}: {seconds(e['surrogate_batch_s'])} / {seconds(f['surrogate_batch_s'])}",
                     f"{times(e['throughput_ratio'], 0)} / {times(f['throughput_ratio'], 0)}"])
    return markdown(["machine", "surrogate", "reference transport s (default path)",
                     "one case, eager / fused s (speed-up)", "batched cases: eager / fused s",
                     "throughput vs reference, eager / fused"], rows)


@table("surrogate-speed-room", "surrogate_speed.json")
def surrogate_speed_room(speed: Json) -> str:
    """The band-alone surrogate on room.toml, 120 s, one process (bench/surrogate_speed.py)."""
    s = speed["surrogate_vs_reference"]
    batch = next(m.group(1) for k in s if (m := re.fullmatch(r"surrogate_batch(\d+)_s", k)))
    rows = [[machine_label(speed["machine"]), seconds(s["reference_flow_s"]), seconds(s["reference_transport_s"]),
             f"{s['surrogate_one_case_s']:.3f}", times(s["speedup_one_case_vs_transport"], 0),
             seconds(s[f"surrogate_batch{batch}_s"]), times(s[f"throughput_ratio_batch{batch}"], 0)]]
    return markdown(["machine", "reference flow s", "reference transport s", "surrogate one case s",
                     "one case vs transport", f"{batch} scenarios batched s", "throughput vs reference"], rows)


# ---------------------------------------------------------------------------------------------------
# active learning: docs/active_learning.md

def _sims_to_reach(data: Json, strategy: str) -> str:
    h = data["headline"][strategy]
    if h["sims_to_sobol_final_mean"] is None:
        return f"> {data['n_sims'][-1]}"
    return f"{h['sims_to_sobol_final_mean']} ({percent(h['fraction_of_sobol_budget'])})"


def _strategy_table(data: Json, digits: int, proposal_seconds: bool) -> str:
    names = {"error": "error (qUCB)"}
    rows = []
    for s in sorted(data["headline"], key=lambda s: data["headline"][s]["final_mean"]):
        h, diag = data["headline"][s], data["diagnostics"]["strategies"][s]
        lo, hi = h["final_mean_spread"]
        paired = "—" if s == "sobol" else ", ".join(signed(x, digits) for x in diag["final_minus_sobol_by_seed"])
        mean = f"{fixed(h['final_mean'], digits)} ({fixed(lo, digits)}–{fixed(hi, digits)})"
        row = [names.get(s, s), _sims_to_reach(data, s), mean,
               fixed(h["final_worst"], 3), paired, percent(diag["rounds_model_unchanged_fraction"])]
        if proposal_seconds:
            row.append(f"{h['mean_propose_s']:.2f}")
        rows.append(row)
    n, seeds = data["n_sims"][-1], len(data["diagnostics"]["sobol_final_mean_by_seed"])
    header = ["strategy", f"sims to reach Sobol's final mean ({fixed(data['sobol_final_mean'], digits)})",
              f"mean test rel. L2 @ {n} (min–max over {seeds} seeds)", f"worst @ {n}",
              "final − Sobol, paired by seed", "rounds model unchanged"]
    return markdown(header + (["proposal s"] if proposal_seconds else []), rows)


@table("al-default", "active_learning.json")
def al_default(data: Json) -> str:
    """Six strategies, the default learner (8 warm-start epochs per round)."""
    return _strategy_table(data, 3, proposal_seconds=True)


@table("al-stable", "active_learning_stable.json")
def al_stable(data: Json) -> str:
    """The same with the gentler warm start (--stable)."""
    return _strategy_table(data, 3, proposal_seconds=False)


@table("al-learner", "active_learning_learner.json")
def al_learner(data: Json) -> str:
    """Sobol, error and variance with the learner that learns from each batch (--learner)."""
    return _strategy_table(data, 4, proposal_seconds=True)


def _curve_table(data: Json, strategies: Sequence[str], by_seed: str | None = None) -> str:
    """Mean test error after each round (bold where it first reaches Sobol's final mean), optionally
    ``by_seed``'s paired difference to Sobol per seed, and the worst test case per strategy."""
    n = data["n_sims"]
    seeds = len(data["runs"]["sobol"])
    rows = []
    for s in strategies:
        reach = data["headline"][s]["sims_to_sobol_final_mean"] if s != "sobol" else None
        cells = [f"**{fixed(v, 4)}**" if k == reach else fixed(v, 4)
                 for k, v in zip(n, data["mean_curve"][s], strict=True)]
        rows.append([f"{s}, mean ({seeds} seeds)" if s == "sobol" else f"{s}, mean"] + cells)
    if by_seed:
        diffs = [[a - b for a, b in zip(r["test_mean"], o["test_mean"], strict=True)]
                 for r, o in zip(data["runs"][by_seed], data["runs"]["sobol"], strict=True)]
        rows.append([f"{by_seed} − sobol, by seed"]
                    + [", ".join(signed(d[i], 4) for d in diffs) if any(d[i] for d in diffs) else "0"
                       for i in range(len(n))])
    rows.append([f"worst case: {' / '.join(strategies)}"]
                + [" / ".join(fixed(data["worst_curve"][s][i], 3) for s in strategies) for i in range(len(n))])
    return markdown(["sims"] + [str(k) for k in n], rows)


@table("al-information", "active_learning_information.json")
def al_information(data: Json) -> str:
    """Sobol and the information strategy (central differences), 4-epoch warm starts."""
    return _curve_table(data, ["sobol", "information"], by_seed="information")


@table("al-oracle", "active_learning_oracle.json")
def al_oracle(data: Json) -> str:
    """Sobol and the two oracles that simulate test cases themselves, 4-epoch warm starts."""
    return _curve_table(data, ["sobol", "oracle_worst", "oracle_spread"])


@table("al-warm12", "active_learning_warm12.json")
def al_warm12(data: Json) -> str:
    """Sobol, information (forward differences) and oracle_worst with 12-epoch warm starts."""
    return _curve_table(data, ["sobol", "information", "oracle_worst"], by_seed="information")


@table("al-warm24", "active_learning_warm24.json")
def al_warm24(data: Json) -> str:
    """The same with 24-epoch warm starts (2 seeds)."""
    return _curve_table(data, ["sobol", "information", "oracle_worst"], by_seed="information")


def _warm_epochs(data: Json) -> str:
    found = re.search(r"(\d+) warm-start epochs", data["reductions"]["surrogate"])
    return found.group(1) if found else "?"


@table("al-verdict", "active_learning_information.json", "active_learning_oracle.json",
       "active_learning_warm12.json", "active_learning_warm24.json")
def al_verdict(information: Json, oracle: Json, warm12: Json, warm24: Json) -> str:
    """Simulations the best planner and the error oracle need to reach Sobol's final mean, per learner."""
    runs = ((information, oracle), (warm12, warm12), (warm24, warm24))
    rows = [[_warm_epochs(info), str(len(info["runs"]["sobol"])), fixed(info["sobol_final_mean"], 4),
             _sims_to_reach(info, "information"), _sims_to_reach(orc, "oracle_worst"),
             ", ".join(f"`{Path(f).name.removesuffix('_curves.png')}`" for f in dict.fromkeys(
                 (info["figures"][0], orc["figures"][0])))]
            for info, orc in runs]
    n = information["n_sims"][-1]
    return markdown(["warm-start epochs", "seeds", f"Sobol mean @ {n}", "information: sims to reach it",
                     "oracle_worst: sims to reach it", "results"], rows)


@table("al-sketch", "active_learning_sketch.json")
def al_sketch(data: Json) -> str:
    """One information proposal per seed with forward and with central differences (--sketch-check)."""
    rows = [[seed, "yes" if r["same_batch"] else "no", sci(r["info_max_relative_difference"], 1),
             f"{r['seconds']['forward']:.0f}", f"{r['seconds']['central']:.0f}", times(r["speedup_forward"], 2)]
            for seed, r in sorted(data["seeds"].items())]
    return markdown(["seed", "same batch", "information matrices, max relative difference", "forward s",
                     "central s", "forward speed-up"], rows)


# space -> the parameter it varies besides the source and the inlet speed
TAIL_SPACES = {"active_learning": "release time", "active_learning_exhaust": "exhaust position"}


def _tail_space(space: str) -> str:
    return f"office: source, inlet speed, {TAIL_SPACES[space]}" if space in TAIL_SPACES else space


def _tail_best(space: Json, key: str) -> str | None:
    """The planner (not Sobol, not the oracle) reaching Sobol's final ``key`` soonest; None if none does."""
    reached = {s: h[key] for s, h in space.items() if s != "sobol" and not s.startswith("oracle")
               and h[key] is not None}
    return min(reached, key=reached.get) if reached else None


@table("al-tail", "active_learning_tail.json")
def al_tail(data: Json) -> str:
    """Per space and strategy: simulations to reach Sobol's final mean and p95 test error (fractions of
    Sobol's budget; seed-mean curves, then the worst seed), final errors, and the planner's own cost."""
    rows = []
    for space, strategies in data["spaces"].items():
        final, price = data["sobol_final"][space], data["simulation_cpu_s"][space]
        label = _tail_space(space)
        if not strategies:
            rows.append([label, "no seed finished yet"] + [""] * 6)
            continue
        for s in (s for s in data["settings"]["strategies"] if s in strategies):
            h, saved = strategies[s], strategies[s]["sim_cpu_s_saved_p95"]
            rows.append([label if s == "sobol" else "", f"{s} ({h['seeds']} seeds)",
                         f"{_fraction(h['sims_to_sobol_mean'])} / {_fraction(h['sims_to_sobol_mean_worst_seed'])}",
                         f"{_fraction(h['sims_to_sobol_p95'])} / {_fraction(h['sims_to_sobol_p95_worst_seed'])}",
                         fixed(h["final_mean"], 4), fixed(h["final_p95"], 4),
                         f"{h['propose_s_per_campaign']:.1f}",
                         "—" if s == "sobol" else ("not reached" if saved is None else f"{saved:.1f}")])
        rows.append(["", f"Sobol's final ({final['budget']} sims, {price:.2f} CPU-s each)", "", "",
                     fixed(final["mean"], 4), fixed(final["p95"], 4), "", ""])
    return markdown(["space", "strategy", "sims to Sobol's final mean: seed mean / worst seed",
                     "… its final p95", "final mean rel. L2", "final p95", "proposal s per campaign",
                     "simulation CPU-s saved to reach the p95"], rows)


SIGNALS = (("rho_raw", "error GP, as the planners fit it"), ("rho_centred", "error GP, errors centred per model"),
           ("rho_current", "error GP, errors re-scored by the current model"),
           ("rho_pool_exact", "error GP on 48 exact, fresh errors (the ceiling)"),
           ("rho_disagreement", "change of prediction since the last round"),
           ("rho_previous_truth", "the true errors of the round before"))


@table("al-signal", "error_signal.json")
def al_signal(data: Json) -> str:
    """Spearman ρ between a signal at the test cases and their true log error under the current model."""
    spaces = list(data["summary"])
    rows = [[label] + [signed(data["summary"][space][key], 2) for space in spaces] for key, label in SIGNALS]
    runs = sum(len(seeds) for by_label in data["spaces"].values() for seeds in by_label.values())
    header = [f"signal (ρ with the true test error, mean over rounds 1–5 and {runs // len(spaces)} Sobol campaigns)"]
    return markdown(header + [f"source, inlet speed, {TAIL_SPACES.get(s, s)}" for s in spaces], rows)


LATENCY_COLUMNS = (("error qLogNEI (pool)", "error_qlognei_pool"), ("error qUCB (L-BFGS)", "error_qucb_lbfgs"),
                   ("error qUCB (pool)", "error_qucb_pool"), ("variance", "variance"))


@table("al-latency", "active_learning.json")
def al_latency(data: Json) -> str:
    """One proposal of q = 4 from 200 observed points, GP fit included, median of repeats."""
    rows = [[dims.removesuffix("d")] + [f"{r[key]['median_s']:.2f} s" for _, key in LATENCY_COLUMNS]
            for dims, r in sorted(data["latency_q4_n200"].items(), key=lambda kv: int(kv[0].removesuffix("d")))]
    return markdown(["dims"] + [label for label, _ in LATENCY_COLUMNS], rows)


MF_ARMS = (("multifidelity", "cost-aware MF planner"),
           ("multifidelity_top", "cost-aware MF planner, half the CPU-s kept for the top level"),
           ("sobol_mix", "Sobol, fixed mix"), ("sobol_low", "Sobol, low level only"))


def _fraction(value: float | None) -> str:
    return "not reached" if value is None else percent(value)


def _spread(values: Sequence[float], digits: int = 3) -> str:
    return f"{fixed(statistics.mean(values), digits)} ({fixed(min(values), digits)}–{fixed(max(values), digits)})"


@table("mf-headline", "multifidelity.json")
def mf_headline(data: Json) -> str:
    """CPU-seconds each arm needs to reach Sobol-at-the-top-level's final test error (worst seed)."""
    head = data["headline"]
    seeds = head["seeds"]
    top = [[s["sobol_top_final_mean"] for s in seeds.values()], [s["sobol_top_final_p95"] for s in seeds.values()],
           [s["budget_cpu_seconds"] for s in seeds.values()]]
    frozen = data.get("unchanged_rounds", {})

    def unchanged(arm: str) -> str:
        by_seed = frozen.get(arm, {})
        return f"{sum(len(v) for v in by_seed.values())} of {6 * len(by_seed)}" if by_seed else "—"

    self_reach = [max(s["sobol_top_self"][f"cost_fraction_{k}"] for s in seeds.values()) for k in ("mean", "p95")]
    rows = [["Sobol, top level only (the reference; its own curve)", _fraction(self_reach[0]),
             _fraction(self_reach[1]), _spread(top[0]), _spread(top[1]), _spread(top[2], 0), "100 %",
             unchanged("sobol_top")]]
    for arm, label in MF_ARMS:
        runs = [s[arm] for s in seeds.values() if arm in s]
        if not runs:
            continue
        worst = head["by_arm"][arm]
        share = [r["top_level_cpu_share"] for r in runs if "top_level_cpu_share" in r]
        rows.append([label, _fraction(worst["mean"]), _fraction(worst["p95"]),
                     _spread([r["final_mean"] for r in runs]), _spread([r["final_p95"] for r in runs]),
                     _spread([r["final_cpu_seconds"] for r in runs], 0),
                     " – ".join(percent(v) for v in (min(share), max(share))) if share else "—", unchanged(arm)])
    return markdown(["arm", "CPU-s to reach Sobol-top's final mean, of B (worst seed)", "… its final p95",
                     "final mean rel. L2 (min–max)", "final p95", "CPU-s spent", "top level's share of them",
                     "later rounds whose retrain kept the old weights"], rows)


@table("mf-levels", "multifidelity.json")
def mf_levels(data: Json) -> str:
    """How close the levels are: the test points at each level against the top (Pearson r of the final
    planes, the relative L2 gap), and the grid check against 0.125 m cells."""
    rows = []
    for level, c in data.get("level_correlation", {}).items():
        rows.append([f"{level} vs {c['against']} (the {c['cases']} test points)", fixed(c["pearson_r_pooled"], 4),
                     f"{fixed(c['pearson_r_by_case_median'], 4)} ({fixed(c['pearson_r_by_case_min'], 4)})",
                     percent(c["relative_l2_mean"], 1)])
    grid = data.get("grid_check")
    if grid:
        for level, gap in grid["mean"].items():
            rows.append([f"{level} vs {grid['finest_cell_size']} m cells ({len(grid['cases'])} points)", "—", "—",
                         percent(gap, 1)])
    return markdown(["pair", "Pearson r, every cell of every case", "by case: median (min)",
                     "relative L2 gap of the final plane (mean)"], rows)


@table("mf-seeds", "multifidelity.json")
def mf_seeds(data: Json) -> str:
    """Per seed: the reference budget B, Sobol-top's final test error beside its error on its own
    training cases (the fit), and each planner arm's fraction of B to reach Sobol-top's final errors."""
    fit = data.get("fit_errors") or {}
    planners = [(arm, label) for arm, label in MF_ARMS if arm.startswith("multifidelity")]
    rows = []
    for seed, s in sorted(data["headline"]["seeds"].items()):
        f = fit.get(seed)
        row = [seed, f"{s['budget_cpu_seconds']:.0f}",
               f"{fixed(s['sobol_top_final_mean'], 4)} / {fixed(s['sobol_top_final_p95'], 4)}",
               f"{fixed(f['fit_mean'], 4)} / {fixed(f['fit_p95'], 4)}" if f else "—"]
        for arm, _ in planners:
            a = s.get(arm, {})
            row.append(f"{_fraction(a.get('cost_fraction_mean'))} / {_fraction(a.get('cost_fraction_p95'))}"
                       if a else "—")
        rows.append(row)
    return markdown(["seed", "B (CPU-s)", "Sobol-top test error, mean / p95", "… on its own 32 training cases"]
                    + [f"{label}: CPU to reach the mean / p95" for _, label in planners], rows)


# the same tables for the second cheap level (bench/multifidelity.py --cheap upwind)
for _name, _fn in (("mf-headline", mf_headline), ("mf-seeds", mf_seeds), ("mf-levels", mf_levels)):
    table(f"{_name}-upwind", "multifidelity_upwind.json")(_fn)


# ---------------------------------------------------------------------------------------------------
# steering: docs/steering.md

@table("steering", "steering.json")
def steering(data: Json) -> str:
    """Per concept: the experiment BoTorch chose, scored on the held-out base cases, against controls."""
    rows = []
    for c in data["concepts"]:
        best, held, rnd = c["search"]["best"], c["held_out"], c["random_direction"]
        rows.append([c["concept"].removesuffix("_field"), "cell" if c["reduce"] == "field" else "channel",
                     f"{best['layer'].removeprefix('closure.')}, {signed(best['alpha'], 2)}, "
                     f"{best['first_step']}–{best['last_step']}",
                     fixed(statistics.mean(held["distance_unsteered"]), 3),
                     fixed(statistics.mean(held["distance_steered"]), 3),
                     fixed(statistics.mean(held["surrogate_floor"]), 3), percent(held["fraction_improved"]),
                     signed(held["mean_log_ratio"], 3), percent(rnd["fraction_improved"]),
                     signed(rnd["mean_log_ratio"], 3), f"{rnd['p_value']:.2f}",
                     signed(c["flipped_sign"]["mean_log_ratio"], 3)])
    return markdown(["concept", "Δ per", "chosen layer, α, steps", "d unsteered", "d steered", "surrogate floor",
                     "improved", "mean log(d₀/d)", "random Δ: improved", "random Δ: log(d₀/d)", "p",
                     "−α: log(d₀/d)"], rows)


# ---------------------------------------------------------------------------------------------------
# operations: docs/operations.md

ORCHESTRATION_STEPS = (("training", "training"), ("simulation", "simulation"), ("planning", "planning"),
                       ("validation (predict before training)", "validation"), ("report figures", "reporting"))


@table("orchestration", "orchestration.json")
def orchestration(data: Json) -> str:
    """The demo campaign's wall time split into science steps and the rest (bench/orchestration.py)."""
    demo = data["demo_campaign"]
    wall = demo["flow_wall_s"]
    rows = [[label, f"{demo['steps_s'][key]:.1f}", percent(demo["steps_s"][key] / wall, 1)]
            for label, key in ORCHESTRATION_STEPS]
    rows.append(["**orchestration** (Prefect runs and states, ledger/checkpoint I/O, lock, audit, artifacts)",
                 f"**{demo['orchestration_s']:.1f}**", f"**{percent(demo['orchestration_fraction'], 1)}**"])
    return markdown([f"part of the flow's wall time ({wall:.0f} s)", "s", "share"], rows)


@table("resume", "orchestration.json")
def resume(data: Json) -> str:
    """Relaunch after kill -9 at a named point: time until the interrupted step runs again."""
    rows = [[f"`{r['kill_point']}`", r["interrupted_step"], f"{r['resume_to_interrupted_step_s']:.1f}",
             f"{r['process_launch_to_flow_entry_s']:.1f}", f"{r['flow_entry_to_first_work_s']:.2f}",
             "yes" if r["final_ledger_equals_uninterrupted"] else "no"]
            for r in data["resume_after_kill"]]
    return markdown(["kill point", "interrupted step", "relaunch → step running again, s",
                     "of which interpreter and imports, s", "flow's own resume, s",
                     "final ledger = uninterrupted run's"],
                    rows)


@table("training-memory", "training_memory.json")
def training_memory(data: Json) -> str:
    """Peak RSS of one training on hall-shaped cases, each in a fresh process (bench/training_memory.py)."""
    rows = []
    for key, label in (("few", "mini-batches of surrogate.batch_size"), ("many", "mini-batches of surrogate.batch_size"),
                       ("few_full_batch", "all at once (the old default)")):
        if key not in data["runs"]:
            continue
        run = data["runs"][key]
        rows.append([str(run["cases"]), f"{run['batch_size']} ({run['mini_batches']})", label,
                     f"{run['rss_gb']:.2f}", f"{run['added_gb']:.2f}", f"{run['estimate_gb']:.2f}",
                     seconds(run["train_s"])])
    rows.append([f"**80 vs 20: {data['rss_ratio_80_vs_20']:.2f}×** (target ≤ 1.5)", "", "", "", "", "", ""])
    return markdown(["cases", "batch (mini-batches)", "rule", "peak RSS, GiB", "added by training, GiB",
                     "estimate, GiB", "train, s"], rows)


@table("training-time", "training_time.json")
def training_time(data: Json) -> str:
    """Warm-start rounds of the hall, the learners side by side (bench/training_time.py)."""
    hall = data["hall"]
    rows = []
    for arm, a in data["arms"].items():
        label = "fused" if a["compile"] else "eager"
        if a.get("warm_start_sample"):
            label += (f", the new cases and a sample of the others, ⌈{a['warm_start_sample']:g}√n⌉ an epoch "
                      f"(whole mini-batches of {a['batch_size']})")
        elif a["warm_start_batches"]:
            label += (f", ≤ {a['warm_start_batches']} mini-batches of {a['batch_size']} an epoch, judged on "
                      f"{a['judge_cases']} cases")
        else:
            label += f", mini-batches of {a['batch_size']}"
        run = hall[arm]
        rows.append([f"{arm}: {label}"] + [seconds(s) for s in run["training_s_by_round"][1:]]
                    + [f"{hall['warm_growth'][arm]:.2f}×", fixed(run["heldout_mean_by_round"][-1], 4),
                       f"{hall['final_heldout_ratio'][arm]:.3f}"])
    n = hall["baseline"]["n"][1:]
    return markdown(["learner", *(f"round {i + 1} ({c} cases), s" for i, c in enumerate(n)),
                     f"growth {n[0]} → {n[-1]} (cases {hall['cases_growth']:.1f}×, √ {hall['sqrt_cases_growth']:.2f}×)",
                     "held-out mean, final", "vs baseline"], rows)


@table("training-time-heldout", "training_time.json")
def training_time_heldout(data: Json) -> str:
    """Each warm-start round's model on the 24 held-out hall cases, the learners side by side (bench/training_time.py)."""
    hall = data["hall"]
    n = hall["baseline"]["n"]
    rows = [[arm] + [fixed(e, 4) for e in hall[arm]["heldout_mean_by_round"]] for arm in data["arms"]]
    return markdown(["learner", *(f"{c} cases" for c in n)], rows)


@table("training-round0", "training_time.json")
def training_round0(data: Json) -> str:
    """Round 0's staged fit cut to 2 + 2 epochs, eager and fused, from the same model (bench/training_time.py)."""
    r0 = data["round0_epochs"]
    return markdown(["eager, s", "fused, first (compiling), s", "fused, s", "eager / fused"],
                    [[seconds(r0["eager_s"]), seconds(r0["fused_first_s"]), seconds(r0["fused_s"]),
                      f"{r0['ratio']:.2f}×"]])


@table("campaign-time", "campaign_time.json")
def campaign_time(data: Json) -> str:
    """configs/hall.toml end to end, default path against eager, each in its own process (bench/campaign_time.py)."""
    labels = {"hall": "default (fused where it pays), √n warm starts", "baseline":
              "before: eager (`CLOSEDLOOP_COMPILE=0`), every case each warm epoch",
              "hall_every_case": "default path, every case each warm epoch",
              "hall_async": "default, async mode (the same 20 cases)"}
    rows = []
    for arm in ("hall", "baseline", "hall_every_case", "hall_async"):
        if arm not in data:
            continue
        a = data[arm]
        steps = a["seconds_by_step"]
        rows.append([labels[arm], seconds(a["wall_s"]), " / ".join(seconds(t) for t in a["training_s_by_round"]),
                     seconds(steps.get("simulation", 0.0)), seconds(steps.get("training", 0.0)),
                     fixed(a["heldout_mean"], 4)])
    return markdown(["path", "wall s", "training s by round", "simulation s", "training s", "held-out mean"], rows)


@table("campaign-time-seeds", "campaign_time.json", "campaign_time_seed12.json", "campaign_time_seed13.json",
       "campaign_time_seed14.json")
def campaign_time_seeds(*runs: Json) -> str:
    """The √n warm start against every case each warm epoch, on the default path, seed by seed
    (``bench/campaign_time.py --seed N``; seed 11 is configs/hall.toml's, from the four-arm run)."""
    rows = []
    for data in runs:
        h, e = data["hall"], data["hall_every_case"]
        growth = [a["training_s_by_round"][-1] / a["training_s_by_round"][1] for a in (h, e)]
        rows.append([str(data.get("seed") or 11), f"{seconds(h['wall_s'])} / {seconds(e['wall_s'])}",
                     f"{times(growth[0], 2)} / {times(growth[1], 2)}",
                     f"{fixed(h['heldout_mean'], 4)} / {fixed(e['heldout_mean'], 4)}",
                     signed(100 * (h["heldout_mean"] / e["heldout_mean"] - 1), 1) + " %"])
    return markdown(["seed", "wall s (√n / every case)", "warm training, 12 → 20 cases (√: 1.29×)",
                     "held-out mean (√n / every case)", "√n's held-out error vs every case"], rows)


@table("simulation-throughput", "simulation_throughput.json")
def simulation_throughput(data: Json) -> str:
    """A first round of the hall asked for at once: all at once, each solving the flow, against the
    defaults (simulations capped at the cores, one flow solve under the geometry's lock)."""
    rows = []
    for label, key in (("before: all at once, each solving the flow", "before"),
                       ("after: capped at the cores, one flow solve under the lock", "after")):
        run = data[key]
        solves = run["flow_solve_seconds"]
        rows.append([label, str(run["max_concurrent"]), f"{run['flow_solves']} ({seconds(max(solves))} each)"
                     if run["flow_solves"] > 1 else f"1 ({seconds(solves[0])})",
                     seconds(run["wall_seconds"]), seconds(run["seconds_per_case"])])
    rows.append(["**speed-up**", "", "", f"**{times(data['speedup'])}**", ""])
    return markdown([f"{data['before']['cases']} cases, {machine_label(data['machine'])}", "at once", "flow solves (s)",
                     "round wall, s", "per case, s"], rows)


@table("async-campaign", "async_campaign.json")
def async_campaign(data: Json) -> str:
    """Sync vs async at equal simulation budget, one simulation worker and one trainer, each on its own
    core (bench/async_campaign.py): wall time, worker utilisation (over the wall, and while there was
    something to simulate), the wall after the last simulation, the wait from a case's end to the next
    start, the final model's error on the fixed test set, and the wall to reach the same test error."""
    rows = []
    same = data.get("same_error") or {}
    for mode in ("sync", "async"):
        m = data["modes"][mode]
        gap = m["replacement_start_s"]
        reach = (same.get("wall_s") or {}).get(mode)
        rows.append([mode, str(m["cases_done"]), str(m["trainings"]), f"{m['wall_s']:.0f}", percent(m["utilisation"], 1),
                     percent(m["utilisation_while_simulating"], 1) if m.get("utilisation_while_simulating") else "—",
                     fixed(m["after_last_simulation_s"], 1) if m.get("after_last_simulation_s") is not None else "—",
                     f"{gap['median']:.2f} / {gap['max']:.1f}" if gap else "—", fixed(m["test_rel_l2"], 4),
                     fixed(reach, 0) if reach is not None else "—"])
    rows.append(["**sync / async**", "", "", f"**{times(data['wall_ratio'], 2)}**", "", "", "", "", "",
                 f"**{times(same['wall_ratio'], 2)}**" if same.get("wall_ratio") else "—"])
    target = fixed(same["target_test_rel_l2"], 4) if same.get("target_test_rel_l2") is not None else "the worse final"
    return markdown(["mode", "cases", "trainings", "wall s", "worker utilisation", "while simulating",
                     "after the last case s", "case end → next start, median / max s",
                     f"test rel. L2 ({data['setting']['test_cases']} cases)", f"wall s to test rel. L2 ≤ {target}"],
                    rows)


# ---------------------------------------------------------------------------------------------------
# benchmarks index: docs/benchmarks.md

@table("bench-index", ALL_RESULTS)
def bench_index(results: dict[str, Json]) -> str:
    """Every results file: the machine it ran on and which generated tables read it."""
    readers: dict[str, list[str]] = {}
    for t in TABLES.values():
        for source in t.sources:
            readers.setdefault(source, []).append(t.name)
    rows = []
    for name, data in sorted(results.items()):
        m = data.get("machine", {})
        rows.append([f"`{name}`", machine_label(m) if m else "—", m.get("torch", "—"),
                     ", ".join(f"`{r}`" for r in readers.get(name, [])) or "—"])
    return markdown(["file", "machine", "torch", "tables"], rows)


# ---------------------------------------------------------------------------------------------------
# README: the headline

def _headline_reference(ref: Json) -> list[str]:
    hall = ref["hall"]
    return [f"3D reference, hall, {hall['horizon_s']:.0f} s, {machine_label(ref['machine'])}",
            f"{hall['total_s']:.0f} s (flow {hall['flow_s']:.0f} s once per geometry, transport "
            f"{hall['transport_s']:.1f} s); mass balance {sci(hall['mass_balance_rel'])}",
            "[reference](docs/reference.md)"]


def _headline_peer(peer: Json) -> list[str]:
    finest = max(r["m"] for r in peer["matched_error"])
    cells = next(r["cells"] for r in peer["runs"] if r["m"] == finest)
    cheb = {r["dtype"]: r["speedup_ours_vs_peer"] for r in peer["matched_error"]
            if r["m"] == finest and r["solver"] == PEER_SOLVERS[3][1]}
    return [f"reference operators vs py-pde at equal error, {cells:,} cells",
            f"{times(cheb['float64'])} faster (float64), {times(cheb['float32'])} (float32)",
            "[reference](docs/reference.md)"]


def _headline_accuracy(paper: Json) -> list[str]:
    hybrid, ood = paper["variants"]["hybrid"], paper["ood"]["hybrid"]
    final = _times(hybrid)[-1]
    test = hybrid["test"]
    return [f"surrogate, hall: {paper['data']['test']} test cases / {paper['data']['ood_moving']} walking "
            f"sources at {final} s",
            f"rel. L2 {fixed(test['per_time'][final]['rel_l2_mean'], 3)} / "
            f"{fixed(ood['per_time'][final]['rel_l2_mean'], 3)}, Spearman {fixed(test['spearman_final_mean'], 3)} / "
            f"{fixed(ood['spearman_final_mean'], 3)} (hybrid)", "[surrogate](docs/surrogate.md)"]


def _headline_speed(cpu: Json, gpu: Json) -> list[str]:
    return ["surrogate throughput vs the reference, hall",
            f"{times(cpu['speed']['throughput_ratio'], 0)} ({machine_label(cpu['machine'])}), "
            f"{times(gpu['speed']['throughput_ratio'], 0)} ({machine_label(gpu['machine'])})",
            "[surrogate](docs/surrogate.md)"]


def _headline_active_learning(tail: Json) -> list[str]:
    cells = []
    for space, strategies in tail["spaces"].items():
        if not strategies:
            continue
        best = _tail_best(strategies, "sims_to_sobol_p95")
        planner = (f"best planner `{best}` {_fraction(strategies[best]['sims_to_sobol_p95'])}" if best
                   else "no planner reaches it")
        oracle = strategies.get("oracle_pool", {}).get("sims_to_sobol_p95")
        cells.append(f"{TAIL_SPACES.get(space, space)} varied: {planner}, the error oracle "
                     f"(a disjoint pool) {_fraction(oracle)}")
    met = any((h.get("sims_to_sobol_p95") or 2) <= 0.5 for space in tail["spaces"].values()
              for s, h in space.items() if s != "sobol" and not s.startswith("oracle"))
    seeds = min((h["seeds"] for space in tail["spaces"].values() for h in space.values()), default=0)
    return [f"active learning, office, {seeds} seeds: simulations to reach Sobol's final p95 test error",
            "; ".join(cells) + f" (target ≤ 50 %: {'met' if met else 'not met'})",
            "[active learning](docs/active_learning.md#where-difficulty-varies-judged-on-the-tail)"]


def _headline_steering(steer: Json) -> list[str]:
    best = max(steer["concepts"], key=lambda c: c["held_out"]["mean_log_ratio"])
    rnd = best["random_direction"]
    return ["steering the closure toward a regime",
            f"best concept `{best['concept']}`: log(d₀/d) {signed(best['held_out']['mean_log_ratio'], 3)} vs "
            f"random directions {signed(rnd['mean_log_ratio'], 3)} (p = {rnd['p_value']:.2f})",
            "[steering](docs/steering.md)"]


def _headline_orchestration(orch: Json) -> list[str]:
    demo = orch["demo_campaign"]
    return ["orchestration overhead, demo campaign",
            f"{percent(demo['orchestration_fraction'], 1)} of {demo['flow_wall_s']:.0f} s "
            f"(target {percent(orch['target_orchestration_fraction'])})", "[operations](docs/operations.md)"]


def _headline_campaign_time(ct: Json) -> list[str]:
    hall = ct["hall"]
    base = (f"; eager path {ct['baseline']['wall_s']:.0f} s ({times(ct['wall_ratio'])}), held-out "
            f"{fixed(ct['baseline']['heldout_mean'], 3)} vs {fixed(hall['heldout_mean'], 3)}") if "baseline" in ct else ""
    asy = (f"; async mode {ct['hall_async']['wall_s']:.0f} s, held-out {fixed(ct['hall_async']['heldout_mean'], 3)}"
           if "hall_async" in ct else "")
    growth = (f"; warm training {times(ct['training_growth_warm'], 2)} from {hall['n'][1]} to {hall['n'][-1]} cases "
              f"(√: {times(ct['sqrt_cases_growth_warm'], 2)})" if ct.get("training_growth_warm") else "")
    return ["hall campaign end to end, 4 rounds, 20 cases (`configs/hall.toml`)",
            f"{hall['wall_s']:.0f} s (target 600 s){base}{growth}{asy}",
            "[operations](docs/operations.md#where-the-time-goes)"]


def _headline_openfoam(of: Json) -> list[str]:
    room, speed = of["room"], of["speed"]
    return ["ours vs OpenFOAM v1912, room (potential flow, same mesh)",
            f"plane rel. L2 {sig(room['rel_l2_final'], 2)}, Spearman {room['spearman_final']:.5f} (own grid error "
            f"{percent(room['grid_convergence_final']['ours'], 1)}); transport {times(speed['transport_ratio_at_equal_error'], 2)} "
            f"faster at equal error (target 3×), default path", "[simulators](docs/simulators.md)"]


def _headline_multifidelity(mf: Json, upwind: Json) -> list[str]:
    """The planner (half the CPU-s kept for the top level) with each cheap level: the fraction of B at
    which it reaches Sobol-top's final mean error, seed by seed."""
    def reach(data: Json) -> str:
        fractions = [s.get("multifidelity_top", {}).get("cost_fraction_mean") for _, s in sorted(data["headline"]["seeds"].items())]
        return " / ".join(_fraction(f) for f in fractions)

    gap = {name: percent(c["relative_l2_mean"], 1) for name, c in (upwind.get("level_correlation") or {}).items()}
    gap.update({name: percent(c["relative_l2_mean"], 1) for name, c in (mf.get("level_correlation") or {}).items()})
    result = (f"cheap level on the top's grid (upwind, {gap.get('upwind', '?')} from the top): {reach(upwind)} by seed; "
              f"a coarser grid ({gap.get('coarse', '?')} from the top): {reach(mf)} (target ≤ 50 % in every seed)")
    return ["multi-fidelity planner (half kept for the top level) vs Sobol at the top level, office: CPU-seconds "
            "to Sobol's final mean error", result, "[active learning](docs/active_learning.md#multi-fidelity-campaigns)"]


def _headline_async(asy: Json) -> list[str]:
    use, targets = asy["utilisation"], asy["targets"]
    def verdict(met: bool) -> str:
        return "met" if met else "not met"

    cases = asy["modes"]["async"]["cases_done"]
    return [f"asynchronous vs synchronous campaign, {cases} cases, 1 simulation worker + 1 trainer",
            f"wall {times(asy['wall_ratio'], 2)} shorter (target {times(targets['wall_ratio'], 1)}: "
            f"{verdict(asy['wall_ratio'] >= targets['wall_ratio'])}); worker utilisation {percent(use['async'])} "
            f"vs {percent(use['sync'])} (target {percent(targets['utilisation_async'])}: "
            f"{verdict(use['async'] >= targets['utilisation_async'])})", "[operations](docs/operations.md)"]


@table("openfoam-room", "openfoam_check.json")
def openfoam_room(of: Json) -> str:
    """room.toml (potential flow, constant K), ours vs OpenFOAM at two cell sizes: final-time agreement."""
    rows = []
    for cell, run in sorted(of["room"]["cells"].items(), key=lambda kv: -float(kv[0])):
        b = run["budget"]
        rows.append([f"{cell} m", sig(run["rel_l2"][-1], 2), f"{run['spearman'][-1]:.5f}", sig(max(run["rel_l2"]), 2),
                     f"{sci(b['ours']['closure'])} / {sci(b['openfoam']['closure'])}"])
    grid = of["room"]["grid_convergence_final"]
    rows.append(["own grid error (0.5 m vs 0.25 m)", f"ours {percent(grid['ours'], 2)}, OpenFOAM "
                 f"{percent(grid['openfoam'], 2)}", "", "", ""])
    return markdown(["cells", "rel. L2, final", "Spearman, final", "rel. L2, worst output",
                     "mass budget closure (ours / OpenFOAM)"], rows)


def _scheme(stages: int) -> str:
    return "Heun" if stages == 2 else f"SSPRK({stages},2)"


@table("time-stepping", "time_stepping.json")
def time_stepping(ts: Json) -> str:
    """SSPRK(s,2) against s on the OpenFOAM race's mesh: steps, evaluations, fused wall time, error."""
    rows = [[_scheme(r["stages"]), f"{r['steps']:,}", f"{r['evaluations']:,}", seconds(r["seconds"]),
             times(r["speedup_vs_heun"], 2), f"{r['error']:.7f}", seconds(r["compile_seconds"]), sci(r["mass_balance"])]
            for r in ts["rows"]]
    return markdown(["scheme", "steps", "evaluations", "transport s", "vs Heun", "error", "compile s",
                     "mass balance"], rows)


@table("openfoam-speed", "openfoam_check.json")
def openfoam_speed(of: Json) -> str:
    """One core each, the same mesh: steady flow, and 600 s of transport at matched error."""
    sp = of["speed"]
    tr, pot = sp["transport"], sp["flow_potential"]
    m = tr["matched"]
    rows = [["potential flow, room 0.25 m", seconds(pot["ours_seconds"]), seconds(pot["openfoam_seconds"]),
             times(pot["flow_ratio"])],
            ["Navier–Stokes flow, hall (OpenFOAM: simpleFoam k-ε, **not converged** at its cap)",
             seconds(of["hall"]["flow"]["ours_seconds"]), seconds(of["hall"]["flow"]["openfoam_seconds"]),
             f"≥ {times(sp['flow_ratio'])}"],
            [f"transport, room 0.25 m, {tr['horizon_s']:.0f} s, error ≤ 1 % above ours (fused, "
             f"{_scheme(tr['ours_best'].get('stages', 2))})",
             seconds(m["fused_excess_0.01"]["ours_seconds"]), seconds(m["fused_excess_0.01"]["openfoam_seconds"]),
             times(m["fused_excess_0.01"]["ratio"], 2)],
            ["the same, error ≤ 0.1 % above ours (fused)", seconds(m["fused_excess_0.001"]["ours_seconds"]),
             seconds(m["fused_excess_0.001"]["openfoam_seconds"]), times(m["fused_excess_0.001"]["ratio"])],
            ["the same, ≤ 1 % (our eager step)", seconds(m["eager_excess_0.01"]["ours_seconds"]),
             seconds(m["eager_excess_0.01"]["openfoam_seconds"]), times(m["eager_excess_0.01"]["ratio"], 2)]]
    return markdown(["what", "ours, s", "OpenFOAM, s", "OpenFOAM time / ours"], rows)


SPACE_LABELS = {"office": "office, 4-D (configs/active_learning.toml)",
                "mf_top": "office 0.25 m, 5-D (configs/multifidelity.toml's top level)",
                "hall": "hall, 3-D (configs/hall.toml)"}


def _spaces(lc: Json) -> list[str]:
    return [s for s in SPACE_LABELS if s in lc and lc[s].get("n")]


@table("learning-curve", "learning_curve.json")
def learning_curve(lc: Json) -> str:
    """Held-out test error after each round of a growing Sobol design (seed means), and the control
    that repeats the same training on round 0's cases only."""
    rows = []
    for space in _spaces(lc):
        d = lc[space]
        for i, n in enumerate(d["n"]):
            spread = d["seed_spread_by_cases"][str(n)]
            rows.append([space if i == 0 else "", str(n), fixed(d["mean_by_cases"][str(n)], 4),
                         "–" if spread != spread else fixed(spread, 4), fixed(d["p95_by_cases"][str(n)], 4),
                         fixed(d["max_by_cases"][str(n)], 4), fixed(d["final_mean_by_cases"][str(n)], 4),
                         fixed(d["control_mean_by_round"][i], 4), seconds(d["training_s_by_round"][i])])
    return markdown(["space", "cases", "test mean", "seed sd", "p95", "max", "final-time mean",
                     "control (round 0's cases)", "training, s"], rows)


@table("learning-curve-summary", "learning_curve.json")
def learning_curve_summary(lc: Json) -> str:
    """One row per space: seeds, the gain from round 0 to the last, the fitted exponent, the largest
    round-to-round rise over the seed spread, and rounds whose training kept its start."""
    rows = []
    for space in _spaces(lc):
        d = lc[space]
        rise = d.get("max_rise_over_seed_spread")
        rows.append([SPACE_LABELS[space], str(d["seeds"]), f"{d['n'][0]} → {d['n'][-1]}",
                     f"{fixed(d['mean_by_cases'][str(d['n'][0])], 4)} → {fixed(d['mean_by_cases'][str(d['n'][-1])], 4)}",
                     fixed(d.get("exponent", float("nan")), 2), times(1 / d["final_vs_round0"], 2),
                     times(1 / d["control_final_vs_round0"], 2),
                     "–" if rise is None else signed(rise, 2), f"{d['rounds_unchanged']} of {d['rounds_trained']}"])
    return markdown(["space", "seeds", "cases", "test mean", "exponent", "gain", "control's gain",
                     "largest rise / seed sd", "warm starts that kept their start"], rows)


@table("hall-campaign", "learning_curve.json")
def hall_campaign(lc: Json) -> str:
    """configs/hall.toml as shipped (its own planner): each round's model on the held-out hall set."""
    d = lc["hall_campaign"]
    rows = [[str(r), str(n), fixed(m, 4), fixed(p, 4), fixed(v, 4)]
            for r, (n, m, p, v) in enumerate(zip(d["n"], d["heldout_mean_by_round"], d["heldout_p95_by_round"],
                                                 d["validation_mean_by_round"]))]
    return markdown(["round", "cases", "held-out mean", "held-out p95",
                     f"validation mean (cases `{d['strategy']}` chose, before training)"], rows)


@table("loss-spikes", "loss_spikes.json")
def loss_spikes(ls: Json) -> str:
    """Round 0 of the smoke space by each variant: how unsteady its training was, and its test error."""
    rows = [[f"`{name}`", fixed(r["initial_loss"], 4), fixed(r["best_loss"], 5), sig(r["peak_over_start"]),
             sig(r["largest_spike"]), "yes" if r["kept_start"] else "no", fixed(r["test_mean"], 4), seconds(r["seconds"])]
            for name, r in ls["initial"].items()]
    return markdown(["round 0 fit", "start loss", "best loss", "peak / start", "largest spike", "kept start",
                     "test mean", "s"], rows)


@table("warm-starts", "loss_spikes.json")
def warm_starts(ls: Json) -> str:
    """Round 1 (8 cases) from the learner's round-0 model, by warm-start variant."""
    rows = [[f"`{name}`", fixed(r["initial_loss"], 5), fixed(r["best_loss"], 5), "yes" if r["kept_start"] else "no",
             fixed(r["test_mean"], 4), seconds(r["seconds"])] for name, r in ls["warm"].items()]
    return markdown(["round 1 training", "start loss", "best loss", "kept start", "test mean", "s"], rows)


def _headline_learning(lc: Json) -> list[str]:
    parts = []
    for space in _spaces(lc):
        d = lc[space]
        parts.append(f"{space} {fixed(d['mean_by_cases'][str(d['n'][0])], 3)} → "
                     f"{fixed(d['mean_by_cases'][str(d['n'][-1])], 3)} ({d['n'][0]} → {d['n'][-1]} cases, "
                     f"{d['seeds']} seed{'s' if d['seeds'] > 1 else ''})")
    unchanged = sum(lc[s]["rounds_unchanged"] for s in _spaces(lc))
    trained = sum(lc[s]["rounds_trained"] for s in _spaces(lc))
    demo = f"; `make demo`'s last round validates at {fixed(lc['smoke']['final_validation_mean'], 3)}" \
        if "smoke" in lc else ""
    return ["learning curve: held-out test rel. L2 as a Sobol design grows",
            "; ".join(parts) + f"; warm starts that kept their start: {unchanged} of {trained}" + demo,
            "[surrogate](docs/surrogate.md#every-round-teaches-the-model)"]


@table("headline", "reference.json", "reference_peer.json", "paper_table.json", "paper_table_gpu.json",
       "active_learning_tail.json", "steering.json", "orchestration.json",
       "openfoam_check.json", "multifidelity.json", "async_campaign.json", "learning_curve.json",
       "campaign_time.json", "multifidelity_upwind.json")
def headline(ref: Json, peer: Json, paper: Json, paper_gpu: Json, tail: Json, steer: Json,
             orch: Json, of: Json, mf: Json, asy: Json, lc: Json, ct: Json, mf_up: Json) -> str:
    """README: one row per topic, each linking to its docs page."""
    rows = [_headline_reference(ref), _headline_peer(peer), _headline_openfoam(of), _headline_accuracy(paper),
            _headline_speed(paper, paper_gpu), _headline_learning(lc), _headline_active_learning(tail),
            _headline_multifidelity(mf, mf_up),
            _headline_steering(steer), _headline_orchestration(orch), _headline_async(asy), _headline_campaign_time(ct)]
    return markdown(["what", "result", "details"], rows)


# ---------------------------------------------------------------------------------------------------
# pages

# A marker is a line of its own, so a page may mention one in its prose.
START = re.compile(r"^<!-- table:([A-Za-z0-9_-]+) -->$", re.MULTILINE)
BLOCK = re.compile(r"^(<!-- table:([A-Za-z0-9_-]+) -->\n)(.*?)^(<!-- /table:\2 -->)$", re.MULTILINE | re.DOTALL)


class BuildError(Exception):
    """A page or a results file that cannot be rendered; the message names the table."""


def pages(root: Path) -> list[Path]:
    return [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if p.exists()]


def load_sources(results: Path, t: Table) -> list:
    if t.sources == (ALL_RESULTS,):
        return [{p.name: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}]
    missing = [s for s in t.sources if not (results / s).exists()]
    if missing:
        raise BuildError(f"table {t.name}: missing {', '.join(str(results / s) for s in missing)}")
    return [json.loads((results / s).read_text()) for s in t.sources]


def render(name: str, results: Path) -> str:
    if name not in TABLES:
        raise BuildError(f"unknown table {name!r}")
    t = TABLES[name]
    try:
        return t.build(*load_sources(results, t)) + "\n"
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise BuildError(f"table {name}: cannot build from {', '.join(t.sources)}: {exc!r}") from exc


def rebuild(text: str, results: Path) -> tuple[str, list[str]]:
    """The page with every table regenerated, and the names of the tables that changed."""
    changed: list[str] = []

    def replace(match: re.Match) -> str:
        start, name, old, end = match.groups()
        new = render(name, results)
        if new != old:
            changed.append(name)
        return start + new + end

    return BLOCK.sub(replace, text), changed


def lint(page: Path, text: str) -> list[str]:
    """Unclosed markers anywhere; in docs/, any table row outside a generated block."""
    problems = []
    closed = {m.start() for m in BLOCK.finditer(text)}
    for m in START.finditer(text):
        if m.start() not in closed:
            problems.append(f"{page}: table {m.group(1)}: no closing <!-- /table:{m.group(1)} -->")
    if page.parent.name == "docs":
        outside = BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        for number, line in enumerate(outside.splitlines(), 1):
            if line.lstrip().startswith("|"):
                problems.append(f"{page}:{number}: a table outside <!-- table:NAME --> markers")
                break
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each stale table")
    parser.add_argument("--results", type=Path, default=None, help="results folder (default ROOT/bench/results)")
    parser.add_argument("--root", type=Path, default=REPO, help="folder holding README.md and docs/")
    args = parser.parse_args(argv)
    results = args.results or args.root / "bench" / "results"

    problems: list[str] = []
    stale: list[str] = []
    shown: set[str] = set()
    for page in pages(args.root):
        text = page.read_text()
        problems += lint(page.relative_to(args.root), text)
        shown |= {m.group(2) for m in BLOCK.finditer(text)}
        try:
            new, changed = rebuild(text, results)
        except BuildError as exc:
            problems.append(f"{page.relative_to(args.root)}: {exc}")
            continue
        stale += [f"{name} ({page.relative_to(args.root)})" for name in changed]
        if changed and not args.check:
            page.write_text(new)
            print(f"rewrote {', '.join(changed)} in {page.relative_to(args.root)}")
    problems += [f"table {name} is on no page" for name in sorted(set(TABLES) - shown)]

    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    if args.check and stale:
        print("stale tables (run `python docs/build.py`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
