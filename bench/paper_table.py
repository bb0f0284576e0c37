"""The paper table (after Xue et al., arXiv 2511.21369, Table 1) on our own hall data, in one command.

    python bench/paper_table.py            # simulate what is missing, train 4 variants, evaluate
    python bench/paper_table.py --epochs 2 # a quick look (results are not written)

Data (bench/paper_cases.py): 53 hall scenarios, Sobol over source (x, y) and emission rate, 600 s at
10 s outputs; the 26 odd-numbered train (22 fit + 4 validation for early stopping), the 27 even-numbered
test. Five walking sources never seen in training are the out-of-distribution set.

Per variant (hybrid, markovian, data_only, physics_only; one switch in SurrogateSpec) the same training
(float32, TBPTT, curriculum 60 → 120 → 300 → 600 s, relative loss with a floor, AdamW with weight decay,
temporal smoothness, early stopping on validation), then on the test set: relative L2 and MSE of the
plane at 60/120/300/600 s, Spearman at 600 s; on the moving sources: Spearman at 600 s and over time.
Speed, measured side by side in this process on one core: the reference transport of one case vs one
surrogate rollout, and throughput in scenarios per second with the surrogate batched.
Writes bench/results/paper_table.json and bench/results/paper_table.png.
"""
from __future__ import annotations

import argparse
import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from scipy.stats import wilcoxon  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from closedloop.surrogates.coupling import batch_problems, spec_for  # noqa: E402
from closedloop.simulators import simulate  # noqa: E402
from closedloop.surrogates import Forcing, HybridSurrogate  # noqa: E402
from closedloop.surrogates.checkpoint import checkpoint_payload, load_model, read_checkpoint, write_checkpoint  # noqa: E402
from closedloop.surrogates.metrics import mse_per_time, relative_l2_per_time, spearman  # noqa: E402
from closedloop.surrogates.model import PHYSICS_PARAMETERS  # noqa: E402
from closedloop.surrogates.training import TrainConfig, train  # noqa: E402

from common import RESULTS, machine, peak_rss_mib, write_result  # noqa: E402
from paper_cases import DATA, ensure_cases, scenarios  # noqa: E402

VARIANTS = ("physics_only", "hybrid", "markovian", "data_only")  # physics first: stage 1 of the others
REPORT_TIMES = (60.0, 120.0, 300.0, 600.0)
# The paper's Table 1 (their hall, 26 train / 27 test): relative error at 600 s, for orientation only
# (different data, resolution and solver).
console = Console()


def model_spec(problem, variant: str, args):
    """One switch between variants; everything else equal. The physics step (hybrid, markovian,
    physics_only) has TVD advection with the band-mean flow, learned face diffusivities D_x, D_y,
    a learned emission retention, and the room layers below and above the band that take what the
    flow carries out of the band and bring it back elsewhere (``--no-layers``: the band alone,
    with the vertical outflow sink and a learned exchange rate λ instead). The closure corrects
    multiplicatively (bounded, positive; ``--closure-form additive``: c̄ + s·M, which can also put scalar
    where the physics left none); data_only has no physics to correct, so its closure adds."""
    return spec_for(problem, hidden_channels=args.hidden, use_closure=variant != "physics_only",
                    learn_sink=True, vertical_exchange=True, room_layers=args.layers, variant=variant,
                    closure=args.closure, closure_layers=2, advection="tvd",
                    learn_velocity_correction=args.velocity_correction,
                    closure_form="additive" if variant == "data_only" else args.closure_form,
                    closure_gain=args.closure_gain, closure_context=args.global_context,
                    closure_scale="peak" if variant == "data_only" else args.closure_scale,
                    memory_gate=args.memory_gate and variant == "hybrid")


def fit_variant(variant: str, train_f: Forcing, train_y: torch.Tensor, val_f: Forcing, val_y: torch.Tensor,
                problem, args, physics: HybridSurrogate | None = None,
                markovian: HybridSurrogate | None = None) -> tuple[HybridSurrogate, dict]:
    """Train one variant. With ``physics`` (the trained physics_only model) the closure variants
    start from its fitted physics fields (stage 1, its time counted in theirs), then train jointly
    with the physics fields at a tenth of their stage-1 learning rate (stage 2). With ``markovian``
    (``--memory-gate``) the hybrid starts from the trained Markovian model, all of it, with its memory
    gate shut, and training opens the gate as far as it helps (its time counted in the hybrid's)."""
    torch.manual_seed(args.seed)
    model = HybridSurrogate(model_spec(problem, variant, args), problem.mask).float().to(args.device)
    staged = physics is not None and variant != "data_only"
    if markovian is not None:
        model.load_state_dict(markovian.state_dict(), strict=False)  # all but θ_γ = 0
    elif staged:
        fitted = {k: v for k, v in physics.state_dict().items() if k in PHYSICS_PARAMETERS}
        model.load_state_dict(fitted, strict=False)
    cfg = TrainConfig(epochs=args.epochs, learning_rate=args.lr, tbptt_steps=args.tbptt, loss_floor=0.05,
                      seed=args.seed, weight_decay=1e-4, smoothness=1e-3,
                      curriculum=tuple(int(x) for x in args.closure_curriculum.split(",")) if staged else (6, 12, 30, 60),
                      patience=args.patience, batch_size=args.closure_batch if staged else None,
                      physics_learning_rate=args.physics_lr / 10 if staged else args.physics_lr)
    t0 = time.perf_counter()

    gate_by_epoch: list[float] = []  # γ after each epoch (--memory-gate): how far training opened the memory

    def progress(epoch: int, loss: float) -> None:
        gate = ""
        if model.spec.memory_gate:
            gate_by_epoch.append(model.memory_fraction().item())
            gate = f"  memory γ {gate_by_epoch[-1]:.3f}"
        console.print(f"  {variant:>13} epoch {epoch + 1:3d}/{cfg.epochs}  train loss {loss:.4g}{gate}  "
                      f"({time.perf_counter() - t0:.0f} s)", highlight=False)

    report = train(model, train_f, train_y, cfg, progress=progress, validation=(val_f, val_y))
    stage1 = physics_seconds.get("physics_only", 0.0) if staged else 0.0
    if markovian is not None:
        stage1 = physics_seconds.get("markovian", stage1)
    if variant in ("physics_only", "markovian"):
        physics_seconds[variant] = report.seconds + stage1
    extra = {"memory_fraction": model.memory_fraction().item(), "started_from": "markovian",
             "memory_fraction_by_epoch": gate_by_epoch} if markovian is not None else {}
    return model.eval(), {**extra, "train_seconds": report.seconds + stage1, "stage1_seconds": stage1, "epochs_run": len(report.losses),
                          "best_epoch": report.best_epoch, "best_validation_loss": report.best_loss,
                          "stopped_early": report.stopped_early, "parameters":
                          sum(p.numel() for p in model.parameters() if p.requires_grad)}


physics_seconds: dict[str, float] = {}


def paired_difference(mine: list[float], other: list[float]) -> dict:
    """Paired comparison of per-case errors on the same cases: the mean of mine − other (negative:
    mine is better), on how many cases mine is better, and the two-sided Wilcoxon signed-rank p."""
    diff = torch.tensor(mine, dtype=torch.float64) - torch.tensor(other, dtype=torch.float64)
    p = float(wilcoxon(diff.numpy()).pvalue) if diff.abs().max() > 0 and diff.numel() >= 5 else 1.0
    return {"mean_difference": diff.mean().item(), "cases": diff.numel(), "better_on": int((diff < 0).sum()),
            "wilcoxon_p": p}


def paired_comparison(results: dict, against: str = "hybrid") -> dict:
    """``against`` vs each other variant at the final time, per case, on the test set and on the moving
    sources (``paired_difference``). A difference below the seed-to-seed spread or with p > 0.05 is a
    tie, not a win."""
    out: dict = {}
    if against not in results["variants"]:
        return out
    for split, rows in (("test", {v: r["test"] for v, r in results["variants"].items()}), ("ood", results["ood"])):
        for other, r in rows.items():
            if other != against:
                out.setdefault(split, {})[other] = paired_difference(rows[against]["rel_l2_final_per_case"],
                                                                     r["rel_l2_final_per_case"])
    return out


def evaluate(model: HybridSurrogate, forcing: Forcing, ref: torch.Tensor, mask: torch.Tensor,
             times: list[float]) -> dict:
    with torch.no_grad():
        pred = model.rollout(forcing, ref.shape[1] - 1).double().cpu()
    ref = ref.double().cpu()
    rel = relative_l2_per_time(pred, ref)  # (B, T+1)
    mse = mse_per_time(pred, ref, mask)
    rho_t = torch.stack([spearman(pred[:, n], ref[:, n], mask) for n in range(1, ref.shape[1])], dim=1)
    out: dict = {"per_time": {}}
    for t in REPORT_TIMES:
        n = times.index(t)
        out["per_time"][f"{t:g}"] = {"rel_l2_mean": rel[:, n].mean().item(), "rel_l2_std": rel[:, n].std().item(),
                                     "mse_mean": mse[:, n].mean().item()}
    out["spearman_final_mean"] = rho_t[:, -1].mean().item()
    out["spearman_final_min"] = rho_t[:, -1].min().item()
    out["spearman_over_time_mean"] = rho_t.mean().item()
    out["rel_l2_final_per_case"] = rel[:, -1].tolist()
    out["spearman_final_per_case"] = rho_t[:, -1].tolist()
    return out, pred


def speed(model: HybridSurrogate, forcing: Forcing, n_steps: int, scenario, batch: int, device: str,
          reference_compile: bool | None = False) -> dict:
    """Reference transport vs surrogate, same process, same device and thread count; the surrogate
    eager and with its layered substep fused (``compile_physics``, compile time reported apart).

    The reference's step is eager here by default, as the tables built from this file say;
    ``reference_compile=None`` takes the reference's default path (``compile_by_default``: the hall
    fuses its step), its compilation paid by the warm-up run."""
    simulate(scenario, device=device, compile=reference_compile)  # warm-up (CUDA context, allocator, compile)
    result = simulate(scenario, device=device, compile=reference_compile)  # flow from the cache: transport alone
    one = forcing.select([0])
    many = Forcing.stack([forcing] * math.ceil(batch / forcing.batch_size)).select(slice(0, batch))

    def timed(f: Forcing, steps: int = n_steps) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.rollout(f, steps)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    out = {"device": device, "reference_dtype": "float64", "surrogate_dtype": str(forcing.source.dtype).removeprefix("torch."),
           "reference_compiled": bool(result.extra["compiled"]),
           "reference_transport_s": result.wall_seconds, "reference_steps": result.steps,
           "reference_scenarios_per_s": 1 / result.wall_seconds, "batch": batch}
    paths = ["eager"] + (["fused"] if model.spec.room_layers else [])
    with torch.no_grad():
        for path in paths:
            if path == "fused":
                kernel = model.compile_physics(True)
                out["fused_compile_s"] = timed(one)  # the first call compiles
                out["fused_compiled"] = kernel.compiled
            timed(one)  # warm-up
            t_one = timed(one)
            timed(many, 1)  # warm-up at the batch's shape (the fused kernel compiles per shape)
            t_many = timed(many)
            out[path] = {"surrogate_one_case_s": t_one, "one_case_speedup": result.wall_seconds / t_one,
                         "surrogate_batch_s": t_many, "surrogate_scenarios_per_s": batch / t_many,
                         "throughput_ratio": (batch / t_many) * result.wall_seconds}
        model._fused_substep = None
    out.update(out[paths[-1]])  # the headline: the fastest path
    out["headline_path"] = paths[-1]
    return out


def figure(test_pred: dict, test_ref: torch.Tensor, ood_pred: torch.Tensor, ood_ref: torch.Tensor,
           mask: torch.Tensor, ood_names: list[str], out_name: str, times: list[float]) -> None:
    """Reference vs each variant at 60/300/600 s on test case 0, the same for the hybrid on the first
    moving source, then the error curves (test) and Spearman over time (moving sources)."""
    shown = [t for t in (60.0, 300.0, 600.0) if t in times]
    rows = [("reference", test_ref[0])] + [(name, pred[0]) for name, pred in test_pred.items()]
    rows += [(f"reference, {ood_names[0]}", ood_ref[0]), (f"hybrid, {ood_names[0]}", ood_pred[0])]
    n_rows = len(rows) + 1
    fig, axes = plt.subplots(n_rows, len(shown), figsize=(3.6 * len(shown), 1.9 * n_rows), constrained_layout=True)
    m = mask.numpy().T
    for r, (title, series) in enumerate(rows):
        moving = "walk" in title or "stand" in title
        ref = ood_ref[0] if moving else test_ref[0]
        for col, t in enumerate(shown):
            n = times.index(t)
            ax = axes[r, col]
            vmax = max(float(ref[n].max()), 1e-30)
            im = ax.imshow(series[n].numpy().T * m, origin="lower", cmap="viridis", vmin=0, vmax=vmax)
            ax.set_title(f"{title}, {t:g} s", fontsize=8)
            ax.set_xticks([]); ax.set_yticks([])
        fig.colorbar(im, ax=axes[r, -1], shrink=0.8, label="mg/m³")
    ax = axes[-1, 0]
    for name, pred in test_pred.items():
        rel = relative_l2_per_time(pred.double(), test_ref.double())[:, 1:].mean(0)
        ax.plot(torch.arange(1, rel.numel() + 1) * 10, rel, label=name)
    ax.set_xlabel("time (s)"); ax.set_ylabel("relative L2 (test mean)"); ax.set_yscale("log"); ax.legend(fontsize=7)
    ax = axes[-1, 1]
    for i, name in enumerate(ood_names):
        rho = [spearman(ood_pred[i:i + 1, n].double(), ood_ref[i:i + 1, n].double(), mask).item()
               for n in range(1, ood_ref.shape[1])]
        ax.plot(torch.arange(1, len(rho) + 1) * 10, rho, label=name)
    ax.set_xlabel("time (s)"); ax.set_ylabel("Spearman, hybrid (moving sources)"); ax.legend(fontsize=6)
    ax.set_ylim(0.9, 1.0)
    for ax in axes[-1, 2:]:
        ax.axis("off")
    fig.savefig(RESULTS / f"{out_name}.png", dpi=80)


def trained_or_reused(variant: str, args, models: dict, fit: tuple, val: tuple, problem) -> tuple[HybridSurrogate, dict]:
    """The variant's model and its training record: loaded from an earlier run's checkpoint
    (``--reuse``), or trained (stage 1 from the fitted physics_only, or from the markovian with
    ``--memory-gate``) and saved unless a quick run."""
    physics = models["physics_only"][0] if "physics_only" in models and args.staged else None
    saved = DATA / "models" / f"{args.name}_{variant}.pt"
    reused = DATA / "models" / f"{args.models_from or args.name}_{variant}.pt"
    if variant in args.reuse.split(",") or args.reuse == "all":  # e.g. re-evaluate on another device
        if not reused.exists():
            raise SystemExit(f"--reuse: no trained {variant} at {reused}; train it first")
        payload = read_checkpoint(reused)
        model = load_model(payload).float().to(args.device)
        info = payload["info"]
        if variant in ("physics_only", "markovian"):  # stage times of the variants that start from it
            physics_seconds[variant] = info.get("train_seconds", 0.0)
    else:
        start = None
        if args.memory_gate and variant == "hybrid":
            if "markovian" not in models:
                raise SystemExit("--memory-gate: the hybrid starts from the trained markovian; "
                                 "list markovian before hybrid in --variants")
            start = models["markovian"][0]
        model, info = fit_variant(variant, *fit, *val, problem, args, physics, start)
        if args.epochs >= 10:
            saved.parent.mkdir(parents=True, exist_ok=True)
            write_checkpoint(saved, checkpoint_payload(model, info=info))
    return model, info


def print_tables(results: dict) -> None:
    """Per variant: test relative L2 (MSE) by time, Spearman, training seconds; the paired comparisons; speed."""
    table = Table(title="hall, 27 test cases: relative L2 (MSE) of the plane by time")
    table.add_column("variant")
    for t in REPORT_TIMES:
        table.add_column(f"{t:g} s")
    table.add_column("Spearman 600 s"); table.add_column("OOD Spearman 600 s"); table.add_column("train s")
    for v, r in results["variants"].items():
        pt = r["test"]["per_time"]
        table.add_row(v, *[f"{pt[f'{t:g}']['rel_l2_mean']:.4f} ({pt[f'{t:g}']['mse_mean']:.2e})" for t in REPORT_TIMES],
                      f"{r['test']['spearman_final_mean']:.4f}", f"{results['ood'][v]['spearman_final_mean']:.4f}",
                      f"{r['train_seconds']:.0f}")
    console.print(table)
    for split, rows in results["paired_vs_hybrid"].items():
        for other, r in rows.items():
            console.print(f"hybrid − {other} ({split}, 600 s): {r['mean_difference']:+.4f}, better on "
                          f"{r['better_on']}/{r['cases']}, Wilcoxon p = {r['wilcoxon_p']:.3g}", highlight=False)
    console.print(results.get("speed", "speed test skipped"))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--closure", default="convgru", choices=("convgru", "encoder_lstm"))
    ap.add_argument("--physics-lr", type=float, default=1e-2)
    ap.add_argument("--no-staged", dest="staged", action="store_false",
                    help="train closure variants from the untrained physics instead of the fitted physics_only")
    ap.add_argument("--no-layers", dest="layers", action="store_false",
                    help="the band alone (no room layers below and above it)")
    ap.add_argument("--velocity-correction", action="store_true", help="learn δu (overfits 22 cases)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--tbptt", type=int, default=6)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256, help="scenarios in the batched throughput test")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda: training, evaluation and the speed test")
    ap.add_argument("--reuse", default="", help="variants to load from an earlier run instead of training "
                    "(comma-separated, or 'all'; from bench/data/paper_table/models)")
    ap.add_argument("--models-from", default=None, help="the earlier run's --name (default: this run's)")
    ap.add_argument("--closure-gain", type=float, default=0.05,
                    help="largest relative change the multiplicative closure makes per output interval")
    ap.add_argument("--closure-form", default="multiplicative", choices=("multiplicative", "additive"),
                    help="how the hybrid and markovian closures correct the physics: c̄·(1 + g tanh M) or c̄ + s·M")
    ap.add_argument("--closure-scale", default="peak", choices=("peak", "mixed"),
                    help="the additive closure's scale: S̄_max Δt, or the well-mixed band's ⟨S̄⟩ Δt")
    ap.add_argument("--memory-gate", action="store_true",
                    help="the hybrid starts from the trained markovian with a learned memory gate γ = 0 "
                         "(list markovian before hybrid in --variants)")
    ap.add_argument("--global-context", action="store_true",
                    help="the ConvGRU closure's gates also see the plane mean of its inputs and memory")
    ap.add_argument("--closure-batch", type=int, default=11, help="cases per optimiser step in the closure stage")
    ap.add_argument("--closure-curriculum", default="60",
                    help="rollout lengths (output steps) of the closure stage's curriculum")
    ap.add_argument("--seed", type=int, default=0, help="initialisation and mini-batch order")
    ap.add_argument("--no-speed", dest="speed", action="store_false", help="skip the speed test")
    ap.add_argument("--name", default="paper_table", help="result file bench/results/NAME.json (and .png)")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    static, moving = scenarios()
    cases = ensure_cases(static + moving, log=console.print)
    static_cases, moving_cases = cases[:len(static)], cases[len(static):]
    train_cases = static_cases[1::2]  # 26
    test_cases = static_cases[0::2]  # 27
    fit_cases, val_cases = train_cases[:22], train_cases[22:]

    def tensors(cs):
        forcing, problem = batch_problems([c.scenario for c in cs], dtype=torch.float32, layers=args.layers)
        return forcing.to(args.device), torch.stack([c.plane for c in cs]).float().to(args.device), problem

    fit_f, fit_y, problem = tensors(fit_cases)
    val_f, val_y, _ = tensors(val_cases)
    test_f, test_y, _ = tensors(test_cases)
    ood_f, ood_y, _ = tensors(moving_cases)
    times = [float(t) for t in test_cases[0].times]
    mask = problem.mask
    results: dict = {"variants": {}, "ood": {}}
    test_pred, models = {}, {}
    for variant in args.variants.split(","):
        console.rule(f"training {variant}")
        model, info = trained_or_reused(variant, args, models, (fit_f, fit_y), (val_f, val_y), problem)
        test_metrics, pred = evaluate(model, test_f, test_y, mask, times)
        ood_metrics, ood_pred = evaluate(model, ood_f, ood_y, mask, times)
        results["variants"][variant] = {**info, "test": test_metrics}
        results["ood"][variant] = ood_metrics
        test_pred[variant], models[variant] = pred, (model, ood_pred)
    results["paired_vs_hybrid"] = paired_comparison(results)
    if args.speed:
        console.rule("speed")
        hybrid = models.get("hybrid", next(iter(models.values())))[0]
        results["speed"] = speed(hybrid, test_f, problem.n_steps, test_cases[0].scenario, args.batch, args.device)

    print_tables(results)
    if args.epochs < 10:
        console.print("[yellow]quick run: results not written[/]")
        return
    if "hybrid" in test_pred and "physics_only" in test_pred:
        figure(test_pred, test_y.cpu(), models["hybrid"][1], ood_y.cpu(), mask, [c.scenario.name for c in moving_cases],
               args.name, times)
    results.update({
        "data": {"train": len(train_cases), "fit": len(fit_cases), "validation": len(val_cases),
                 "test": len(test_cases), "ood_moving": len(moving_cases), "horizon_s": times[-1],
                 "output_interval_s": times[1] - times[0], "plane_grid": list(mask.shape),
                 "reference_grid": test_cases[0].grid["shape"], "reference_spacing_m": test_cases[0].grid["spacing"],
                 "cases_dir": str(DATA / "cases")},
        "config": {k: v for k, v in vars(args).items()}, "machine": machine(), "peak_rss_mib": peak_rss_mib()})
    path = write_result(args.name, results)
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
