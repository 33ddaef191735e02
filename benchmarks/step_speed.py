"""Training-step speed of every method, against the bare network and an official-style Ada-CM step.

    python benchmarks/step_speed.py [--scales cpu paper] [--steps 10] [--warmup 3] [--python PATH]

Each case runs in a fresh child process (so peak memory is its own) on pre-built batches: the data
pipeline is excluded (see `data_pipeline.py` for it). A step is what the trainer does per iteration: the
method's forward passes and losses, backward, optimizer, EMA (and Ada-CM's weight shrink). The bound is the
bare network's forward + backward over the same image tensors, in one pass or one pass per view batch
(whichever is faster on the machine), no optimizer, no augmentation.
samples/s counts labeled + unlabeled images per step (not views); `ratio` = bound time / step time.

Scales: `cpu` = preset `fer2013_ssl` (small CNN, 48 px, 64 + 64 images); `paper` = preset `adacm_rafdb_4000`
(ResNet-18, 224 px, 16 + 16, Adam, channels-last). `--python` runs the children in another interpreter (the
USB venv, so semifer and USB are timed on the same torch). USB's rows come from `usb_peer.py --speed`
(benchmarks/out/usb_speed.json) when present.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from record import OUT, command, header, machine, peak_rss_mb, save_json, write_section  # noqa: E402

SCALES = {"cpu": "fer2013_ssl", "paper": "adacm_rafdb_4000"}
CASES: dict[str, tuple[str, list[str]]] = {
    "supervised": ("supervised", []),
    "pseudolabel": ("pseudolabel", []),
    "fixmatch": ("fixmatch", []),
    "flexmatch": ("flexmatch", []),
    "mixmatch": ("mixmatch", []),
    "remixmatch": ("remixmatch", []),
    "dta_snl": ("dta_snl", []),
    "adacm": ("adacm", []),
    "adacm, one concatenated pass": ("adacm", ["method.separate_forward=false"]),
    "adacm, official-code style": ("adacm", []),
}
POOL = 4096


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Any, device: Any, steps: int, warmup: int) -> list[float]:
    times = []
    for i in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def measure(scale: str, case: str, steps: int, warmup: int) -> dict[str, Any]:
    """Run one case in this process and return its numbers (called in the child)."""
    import torch
    from torch.nn import functional as F

    from semifer.config import load_config
    from semifer.engine.distributed import local_device
    from semifer.engine.run import make_model
    from semifer.engine.trainer import TrainData, Trainer
    from semifer.methods import Batch, build_method

    bound = case.startswith("bound:")
    method_name, overrides = CASES[case.removeprefix("bound:")]
    cfg = load_config(SCALES[scale], [f"method.name={method_name}", *overrides])
    device = local_device("auto")
    torch.manual_seed(0)
    model = make_model(cfg, 7)
    method = build_method(cfg.method, 7, POOL)
    b_l = cfg.train.batch_size
    b_u = max(1, round(b_l * cfg.train.unlabeled_ratio))
    size = cfg.data.img_size
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), method, model, TrainData(None, None, None), device,  # type: ignore[arg-type]
                          progress=False)

    def batch(n: int, kinds: tuple[str, ...]) -> Batch:
        raw = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
        views = [torch.stack([view(img) for img in raw]) for view in trainer._views(kinds)]
        fmt = torch.channels_last if cfg.model.channels_last else torch.contiguous_format
        return Batch([v.to(device, memory_format=fmt) for v in views], torch.randint(0, 7, (n,), device=device),
                     torch.randperm(POOL, device=device)[:n])

    labeled = batch(b_l, method.labeled_views)
    unlabeled = batch(b_u, method.unlabeled_views) if method.uses_unlabeled else None
    images = [*labeled.views, *(unlabeled.views if unlabeled else [])]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    if bound:
        bare, x = trainer.model, torch.cat(images)
        y = torch.randint(0, 7, (len(x),), device=device)

        def one_pass() -> None:
            bare.zero_grad(set_to_none=True)
            F.cross_entropy(bare(x), y).backward()

        def per_view() -> None:
            bare.zero_grad(set_to_none=True)
            sum(F.cross_entropy(bare(v), y[: len(v)]) for v in images).backward()  # type: ignore[union-attr]

        # On a CPU several small passes can beat one large one (cache); the bound is the faster way.
        faster = min((statistics.median(_timed(f, device, 3, 1)), i) for i, f in enumerate((one_pass, per_view)))
        run = (one_pass, per_view)[faster[1]]
    elif case.endswith("official-code style"):
        from official_style_adacm import OfficialStyleAdaCM

        # The authors' code keeps PyTorch's default (contiguous) memory format.
        plain = trainer.model.to(memory_format=torch.contiguous_format)
        ref = OfficialStyleAdaCM(plain, copy.deepcopy(plain).eval(), cfg.train.lr)
        assert unlabeled is not None
        weak1, weak2, strong = (v.contiguous() for v in unlabeled.views)
        labeled.views[0] = labeled.views[0].contiguous()

        def run() -> None:
            ref.step(labeled.views[0], labeled.label, weak1, weak2, strong)
    else:

        def run() -> None:
            trainer._train_step(labeled, unlabeled)

    times = _timed(run, device, steps, warmup)
    median = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_rss_mb()
    toolkit = "bare network" if bound else "official style" if "official" in case else "semifer"
    return {"toolkit": toolkit, "method": case, "scale": scale,
            "labeled": b_l, "unlabeled": b_u if unlabeled else 0, "images_per_step": sum(len(v) for v in images),
            "step_seconds_median": median, "step_seconds": times,
            "samples_per_s": (b_l + (b_u if unlabeled else 0)) / median, "peak_mem_mb": peak,
            "peak_mem_kind": "cuda allocated" if device.type == "cuda" else "process peak RSS (VmHWM)",
            "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device)}


def bound_key(row: dict[str, Any]) -> tuple[str, int, str]:
    return row["scale"], row["images_per_step"], row["torch"]


def row_key(row: dict[str, Any]) -> tuple[str, str, str, str]:
    """Rows of another run replace only the same case on the same torch (a venv run adds its own rows)."""
    return row["scale"], row["toolkit"], row["method"], row["torch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", default=list(SCALES), choices=list(SCALES))
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--python", default=sys.executable, help="interpreter for the timed children")
    parser.add_argument("--report-only", action="store_true", help="rewrite BENCHMARKS.md from the saved JSON")
    parser.add_argument("--child", nargs=2, metavar=("SCALE", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.steps, args.warmup)))
        return

    path = OUT / "step_speed.json"
    blob = json.loads(path.read_text()) if path.exists() else {"rows": []}
    if not args.report_only:
        rows: list[dict[str, Any]] = []

        def child(scale: str, case: str) -> dict[str, Any]:
            out = subprocess.run([args.python, __file__, "--child", scale, case, "--steps", str(args.steps),
                                  "--warmup", str(args.warmup)], capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{scale:6s} {row['method']:36s} {row['samples_per_s']:8.1f} samples/s "
                  f"{1000 * row['step_seconds_median']:8.1f} ms  {row['peak_mem_mb']:.0f} MB", flush=True)
            return row

        for scale in args.scales:
            for case in args.cases:
                rows.append(child(scale, case))
                if bound_key(rows[-1]) not in {bound_key(r) for r in rows if r["toolkit"] == "bare network"}:
                    rows.append(child(scale, f"bound:{case}"))
        meta = {"command": command(), "machine": machine()}
        new = {row_key(r) for r in rows}
        kept = [r for r in blob["rows"] if row_key(r) not in new]
        blob = {**meta, "rows": [*kept, *({**r, **meta} for r in rows)]}
        save_json("step_speed", blob)
    write_section("step_speed", table(blob))


def rate(samples_per_s: float) -> str:
    return f"{samples_per_s:.1f}" if samples_per_s < 100 else f"{samples_per_s:.0f}"


def table(blob: dict[str, Any]) -> str:
    usb_path = OUT / "usb_speed.json"
    usb = json.loads(usb_path.read_text()).get("rows", []) if usb_path.exists() else []
    bounds = {bound_key(r): r for r in blob["rows"] if r["toolkit"] == "bare network"}
    measured = {(r["scale"], r["method"], r["torch"]): r for r in blob["rows"] if r["toolkit"] != "bare network"}
    commands = sorted({r["command"] for r in blob["rows"]})
    lines = [
        "## Training-step speed", "",
        "Commands: " + "; ".join(f"`{c}`" for c in commands) + ". Median of the timed steps after warm-up.",
        header(blob["machine"]), "",
        "samples/s = labeled + unlabeled images per step / median step time (views not counted); bound = the "
        "bare network's forward + backward over the same image tensors, in one pass or one pass per view "
        "batch, whichever is faster here (no optimizer, no data loading, no augmentation); ratio = bound time / "
        "step time. cpu = small CNN, 48 px, 64 + 64; paper = "
        "ResNet-18, 224 px, 16 + 16 (Ada-CM: 2 weak + 1 strong view per unlabeled image). Peak memory on CPU "
        "is the child process's peak RSS (VmHWM; torch and Python included).", "",
        "| scale | toolkit | method | images per step | step ms | samples/s | bound samples/s | ratio to bound "
        "| peak MB | torch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in [*blob["rows"], *usb]:
        if r["toolkit"] == "bare network":
            continue
        twin = measured.get((r["scale"], r["method"], r["torch"]), {})
        # A peer's row counts its images its own way; the same algorithm feeds the same tensors as semifer's.
        images = twin.get("images_per_step") or r.get("images_per_step")
        bound = bounds.get((r["scale"], images, r["torch"]))
        ratio = f"{bound['step_seconds_median'] / r['step_seconds_median']:.2f}" if bound else "-"
        bound_rate = rate(bound["samples_per_s"]) if bound else "-"
        lines.append(f"| {r['scale']} | {r['toolkit']} | {r['method']} | {images or '-'} | "
                     f"{1000 * r['step_seconds_median']:.1f} | {rate(r['samples_per_s'])} | {bound_rate} | {ratio} | "
                     f"{r['peak_mem_mb']:.0f} | {r['torch']} |")
    raw = "`benchmarks/out/step_speed.json`" + (", `benchmarks/out/usb_speed.json`" if usb else "")
    lines += ["", f"Raw numbers: {raw}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
