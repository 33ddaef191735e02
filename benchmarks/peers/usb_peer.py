"""USB (Microsoft's `semilearn` 0.3.2) as a peer of semifer's FER2013 SSL benchmark, and USB's step throughput.

    python -m benchmarks.peers.usb_peer [--methods fixmatch flexmatch] [--epochs 20 --iters 60]
    python -m benchmarks.peers.usb_peer --speed [--methods fixmatch flexmatch mixmatch remixmatch pseudolabel]
    python -m benchmarks.peers.usb_peer --report-only

Why: a second implementation of FixMatch and FlexMatch on exactly the protocol of `benchmarks/accuracy/fer2013_ssl.py`
tells whether semifer's numbers come from the methods or from its code. USB runs in its own venv
(`runs/venv-usb`, torch 2.9.1, built by `ensure_venv` when missing), never as a dependency of semifer: this
script, under the system python, launches itself there (`--worker`) and writes the results.

Shared with semifer's rows: FER2013 Training as the pool with the 400 labels of the split file
`benchmarks/out/splits/fer2013_adacm{labels}_seed{seed}.json` (USB's splitter cannot express the Ada-CM
counts), PublicTest as the test set; the `fer2013_ssl` preset's small_cnn with a plain linear head, built and
initialised by semifer's `build_model`; 48 px grayscale faces repeated to 3 channels, ImageNet normalisation;
64 labeled + 64 unlabeled images per step; SGD lr 0.03, momentum 0.9, Nesterov, weight decay 5e-4 (not on
biases and norm weights, in both); the same number of steps; EMA 0.99, the EMA model evaluated after every
epoch; tau 0.95, hard pseudo-labels (T 0.5 unused), lambda_u 1, FlexMatch's threshold warm-up and convex
mapping; one concatenated forward; fp32; seed 0.

Where the two recipes still differ:
- lr schedule: semifer's `cosine` is 0.5 (1 + cos(pi t)), down to zero. USB has one schedule, FixMatch's
  cos(7 pi t / 16), which ends at 0.2 lr (semifer's `train.schedule=fixmatch_cosine` is the same curve). By
  default the USB scheduler is replaced by semifer's own `lr_factor`, so the schedules are equal;
  `--usb-schedule` keeps USB's (rows tagged "USB cosine").
- augmentation (USB's standard CV views, as USB builds them for CIFAR): weak = RandomCrop with 6 px reflect
  padding (crop_ratio 0.875), always, + flip; strong = the same + USB's RandAugment(3, 5) (3 of 14 ops at a
  random magnitude, then Cutout up to half the side). semifer's weak view crops with 2 px zero padding half
  of the time; its strong view is RandAugment + Cutout, then the weak view.
- EMA: USB averages the parameters only and evaluates with the live model's BN statistics; semifer averages
  the BN running statistics too.
- unlabeled set: the split's unlabeled ids, which exclude the labeled images (semifer's protocol); USB's own
  loaders would add them (`include_lb_to_ulb`).
- data loading: USB's loaders (batches drawn by its sampler reseeded with the epoch number, iterators re-made
  every epoch, `--workers` worker(s) for the labeled batch and twice that for the unlabeled one); semifer's are
  endless, persistent, one worker each. RNG streams differ, so seed 0 gives other initial weights and batches.
- on a GPU semifer trains with bf16 autocast; USB here keeps its default `amp=False`.

What had to be adapted in USB (nothing of it is copied: the worker imports it):
- net: `USBNet` gives semifer's FERNet USB's net interface (`net(x)` -> {'logits', 'feat'}, `only_feat`,
  `only_fc`, `num_features`); USB calls the builder as `net_builder(num_classes=, pretrained=, pretrained_path=)`.
- data: the algorithm subclass overrides `set_dataset`, USB's dataset hook, to return USB `BasicDataset`s over
  the split's images (it also sets `ulb_dest_len`, the pool size FlexMatch's per-image state needs); USB's own
  `set_data_loader`, training loop, hooks, EMA and evaluation run unchanged.
- CPU: USB is GPU-only (`Tensor.cuda(gpu)` in `process_batch` and `evaluate`, CUDA events in `TimerHook`).
  Without CUDA the worker makes `Tensor.cuda` the identity and drops `TimerHook`, which only logs timings.
- aim and wandb: `semilearn.core.hooks` imports them at module level only to define `AimHook` / `WANDBHook`,
  which run only with `use_aim` / `use_wandb` (off). Empty modules stand in for them when they are not installed,
  rather than ~40 more packages in the venv (boto3, fastapi, SQLAlchemy, ...).
- timing: an `EpochClock` hook times each epoch without evaluation and checkpoint writes, as semifer does.

Throughput (`--speed`, CPU scale): seconds per USB training step on one pre-built batch (64 labeled + 64
unlabeled 48 px images; data loading excluded): `train_step` (forward and losses) + USB's `ParamUpdateHook`
(backward, SGD step, scheduler step, zero_grad) + `EMAHook`, 3 warm-up + 10 timed steps, one process per
method; samples/s = 128 / median step time; peak memory = the worker process's peak RSS (VmHWM, with USB's
imports: `ru_maxrss` would carry over the driver's, see `peak_rss_mb`).
MixMatch, ReMixMatch (with its rotation head on `num_features`) and Pseudo-Label run with the same net wrapper,
at USB's default hyper-parameters.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import time
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.common import (
    ROOT,
    add_budget,
    command,
    data_root,
    fer2013_split_file,
    header,
    load_json,
    machine,
    module_command,
    parser,
    peak_rss_mb,
    save_json,
    upsert_rows,
    write_section,
)
from semifer.config import Config, load_config
from semifer.data.faceset import FaceSet
from semifer.data.registry import load_dataset
from semifer.data.splits import Split, apply_split
from semifer.data.views import IMAGENET_MEAN, IMAGENET_STD
from semifer.engine.optim import lr_factor
from semifer.engine.run import build_model
from semifer.labels import CANONICAL
from semifer.methods import method_class
from semifer.models.classifier import FERNet

VENV = ROOT / "runs" / "venv-usb"
RUN_DIR = ROOT / "runs" / "usb-peer"
USB = "semilearn==0.3.2"
TOOLKIT = "USB (semilearn 0.3.2)"
TORCH_PINS = ("torch==2.9.1", "torchvision==0.24.1", "torchaudio==2.9.1")
# What `import semilearn` and its CV algorithms import (its metadata also lists aim and wandb, see
# `stand_in_trackers`), then what semifer needs beyond them. ruamel.yaml < 0.18 keeps USB's YAML config reader.
USB_DEPS = (
    "matplotlib==3.11.2",
    "numpy==2.4.6",
    "pillow==13.0.0",
    "progress==1.6.1",
    "ruamel.yaml==0.17.40",
    "scikit-image==0.26.0",
    "scikit-learn==1.9.1",
    "scipy==1.17.1",
    "tensorboard==2.21.0",
    "timm==1.0.31",
    "tqdm==4.70.1",
    "transformers==5.23.0",
)
SEMIFER_DEPS = ("pyyaml==6.0.3", "safetensors==0.8.0")
ACCURACY_METHODS = ("fixmatch", "flexmatch")
SPEED_METHODS = ("fixmatch", "flexmatch", "mixmatch", "remixmatch", "pseudolabel")
SEMIFER_PEERS = ("fixmatch", "flexmatch", "adacm")
USB_CROP_RATIO = 0.875
# The USB settings a result records (what the preset fixes, and the algorithm's own knobs).
USB_KEYS = (
    "epoch",
    "num_train_iter",
    "batch_size",
    "uratio",
    "optim",
    "lr",
    "momentum",
    "weight_decay",
    "ema_m",
    "ulb_loss_ratio",
    "p_cutoff",
    "T",
    "hard_label",
    "thresh_warmup",
    "use_cat",
    "amp",
    "img_size",
    "crop_ratio",
    "num_workers",
    "seed",
)


def ensure_venv(path: Path) -> Path:
    """Build (or complete) the USB venv with pinned versions; returns its python. A marker with the pins makes
    this a no-op once done; changed pins re-run the installs."""
    python = path / "bin" / "python"
    pins = "\n".join([*TORCH_PINS, USB, *USB_DEPS, *SEMIFER_DEPS]) + "\n"
    marker = path / "usb_peer_pins.txt"
    if marker.is_file() and marker.read_text() == pins:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    for group in (TORCH_PINS, ("--no-deps", USB), (*USB_DEPS, *SEMIFER_DEPS), ("--no-deps", "-e", str(ROOT))):
        subprocess.run([*pip, *group], check=True)
    marker.write_text(pins)
    return python


# ------------------------------------------------------------------------------------------ worker (USB venv)
class USBNet(nn.Module):
    """semifer's FERNet behind USB's net interface: `net(x)` -> {'logits', 'feat'}; `only_feat=True` -> the
    pooled feature; `only_fc=True` -> the head applied to a given feature (ReMixMatch, manifold mixup)."""

    def __init__(self, net: FERNet) -> None:
        super().__init__()
        self.net = net
        self.num_features = net.head.in_features

    def forward(
        self, x: torch.Tensor, only_fc: bool = False, only_feat: bool = False, **kwargs: Any
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        if only_fc:
            return self.net.head(x)
        feat = self.net.embed(x)
        if only_feat:
            return feat
        return {"logits": self.net.head(feat), "feat": feat}


def stand_in_trackers() -> None:
    """Empty `aim` / `wandb` modules when they are not installed: semilearn imports them at module level only to
    define its optional tracking hooks, which stay off here."""
    for name in ("aim", "wandb"):
        if importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name)


def _stay(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return self


def usb_device() -> int | None:
    """USB's `gpu` argument: GPU 0 when there is one; on CPU, `Tensor.cuda` (which USB calls unconditionally on
    every batch) becomes the identity."""
    if torch.cuda.is_available():
        torch.cuda.set_device(0)
        return 0
    torch.Tensor.cuda = _stay  # type: ignore[method-assign]
    return None


def seed_like_usb(seed: int) -> None:
    """USB's train.py seeding."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True


def semifer_config(method: str, epochs: int, iters: int, seed: int) -> Config:
    """The `fer2013_ssl` preset as semifer's rows ran it (training settings, small_cnn with a plain head)."""
    return load_config(
        "fer2013_ssl",
        [
            f"method.name={method}",
            "model.pretrained=none",
            "model.dropout=0",
            "model.l2norm=false",
            f"train.epochs={epochs}",
            f"train.iters_per_epoch={iters}",
            f"seed={seed}",
        ],
    )


def usb_config(method: str, cfg: Config, num_labels: int, workers: int, gpu: int | None) -> argparse.Namespace:
    """USB's config (its `get_config` with our values) equal to the preset wherever USB has the setting."""
    from semilearn import get_config

    tc = cfg.train
    if tc.optimizer != "sgd" or not tc.nesterov or tc.warmup_iters or tc.unlabeled_ratio != round(tc.unlabeled_ratio):
        raise ValueError("USB's optimiser is Nesterov SGD with an integer uratio; the preset must match that")
    budget = f"{tc.epochs}x{tc.iters_per_epoch}"
    options: dict[str, Any] = {
        "algorithm": method,
        "net": f"semifer_{cfg.model.arch}",
        "use_pretrain": False,
        "pretrain_path": "",
        "save_dir": str(RUN_DIR),
        "save_name": f"{method}-{budget}",
        "overwrite": True,
        "resume": False,
        "epoch": tc.epochs,
        "num_train_iter": tc.epochs * tc.iters_per_epoch,
        "num_warmup_iter": 0,
        "num_eval_iter": tc.iters_per_epoch * tc.eval_every,
        "num_log_iter": max(1, tc.iters_per_epoch // 3),
        "batch_size": tc.batch_size,
        "uratio": round(tc.unlabeled_ratio),
        "eval_batch_size": tc.eval_batch_size,
        "ema_m": tc.ema,
        "ulb_loss_ratio": 1.0,
        "optim": "SGD",
        "lr": tc.lr,
        "momentum": tc.momentum,
        "weight_decay": tc.weight_decay,
        "layer_decay": 1.0,
        "use_cat": True,
        "amp": False,
        "clip_grad": 0.0,
        "dataset": "fer2013",
        "num_classes": 7,
        "num_labels": num_labels,
        "train_sampler": "RandomSampler",
        "num_workers": workers,
        "include_lb_to_ulb": False,
        "img_size": cfg.data.img_size,
        "crop_ratio": USB_CROP_RATIO,
        "seed": cfg.seed,
        "gpu": gpu,
        "world_size": 1,
        "rank": 0,
        "distributed": False,
        "multiprocessing_distributed": False,
        "use_tensorboard": False,
        "use_wandb": False,
        "use_aim": False,
    }
    if method in ACCURACY_METHODS:
        opts = method_class(method).Options()
        if method == "flexmatch" and opts.flex_mapping != "convex":
            raise ValueError("USB's FlexMatch has only the convex mapping")
        options.update(p_cutoff=opts.tau, T=0.5, hard_label=True, ulb_loss_ratio=opts.lambda_u)
        if method == "flexmatch":
            options["thresh_warmup"] = opts.flex_warmup
    return get_config(options)


def face_arrays(faces: FaceSet) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, 3) images, the layout USB's `BasicDataset` turns into PIL images, and canonical labels."""
    images = np.stack([faces.load(i).permute(1, 2, 0).numpy() for i in range(len(faces))])
    return images, faces.labels


def peer_algorithm(
    config: argparse.Namespace,
    cfg: Config,
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    semifer_schedule: bool,
    pool_size: int | None = None,
) -> Any:
    """USB's `config.algorithm`, fed the split's images through its dataset hook and semifer's net through its
    builder. `pool_size` sizes FlexMatch's per-image state when only a few images are given (throughput)."""
    from semilearn import BasicDataset
    from semilearn.algorithms import name2alg
    from semilearn.core.hooks import Hook, TimerHook
    from semilearn.datasets.augmentation import RandAugment
    from torchvision import transforms

    size = config.img_size
    pad = int(size * (1 - config.crop_ratio))
    crop = [
        transforms.Resize(size),
        transforms.RandomCrop(size, padding=pad, padding_mode="reflect"),
        transforms.RandomHorizontalFlip(),
    ]
    norm = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    weak = transforms.Compose([*crop, *norm])
    strong = transforms.Compose([*crop, RandAugment(3, 5), *norm])
    test = transforms.Compose([transforms.Resize(size), *norm])

    def build_net(num_classes: int, pretrained: bool = False, pretrained_path: str | None = None) -> USBNet:
        return USBNet(build_model(cfg, num_classes))

    class EpochClock(Hook):
        """Per epoch: training seconds without evaluation and checkpoint writes (as semifer's epoch time),
        images/s, mean mask rate and the EMA test metrics USB's EvaluationHook logged at the epoch's end."""

        def __init__(self) -> None:
            self.history: list[dict[str, Any]] = []

        def before_train_epoch(self, algorithm: Any) -> None:
            self.started, self.off, self.first = time.perf_counter(), algorithm.off_clock, algorithm.it
            self.masks: list[float] = []

        def after_train_step(self, algorithm: Any) -> None:
            if "train/util_ratio" in algorithm.log_dict:
                self.masks.append(algorithm.log_dict["train/util_ratio"])

        def after_train_epoch(self, algorithm: Any) -> None:
            seconds = time.perf_counter() - self.started - (algorithm.off_clock - self.off)
            args, log = algorithm.args, algorithm.log_dict
            images = (algorithm.it - self.first) * args.batch_size * (1 + args.uratio)
            record = {
                "epoch": algorithm.epoch + 1,
                "step": algorithm.it,
                "epoch_seconds": seconds,
                "images_per_s": images / max(seconds, 1e-9),
                "lr": algorithm.optimizer.param_groups[0]["lr"],
                "train/total_loss": log.get("train/total_loss"),
                "mask_rate": statistics.fmean(self.masks) if self.masks else None,
            }
            if "eval/top-1-acc" in log:
                record["test"] = {
                    "accuracy": log["eval/top-1-acc"],
                    "mean_class_accuracy": log["eval/balanced_acc"],
                    "macro_f1": log["eval/F1"],
                }
            self.history.append(record)

    class Peer(name2alg[config.algorithm]):  # type: ignore[misc,valid-type]
        def __init__(self, args: argparse.Namespace, net_builder: Any) -> None:
            self.off_clock = 0.0
            super().__init__(args, net_builder)

        def set_dataset(self) -> dict[str, Any]:
            (lb_x, lb_y), (ulb_x, _), (test_x, test_y) = data["labeled"], data["unlabeled"], data["test"]
            self.args.lb_dest_len = len(lb_x)
            self.args.ulb_dest_len = pool_size or len(ulb_x)
            alg, n = self.args.algorithm, self.num_classes
            return {
                "train_lb": BasicDataset(alg, lb_x, lb_y, n, weak, is_ulb=False),
                "train_ulb": BasicDataset(alg, ulb_x, None, n, weak, is_ulb=True, strong_transform=strong),
                "eval": BasicDataset(alg, test_x, test_y, n, test, is_ulb=False),
                "test": None,
            }

        def set_optimizer(self) -> tuple[torch.optim.Optimizer, Any]:
            optimizer, scheduler = super().set_optimizer()
            if semifer_schedule:
                total = self.num_train_iter
                scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(cfg.train, s, total))
            return optimizer, scheduler

        def set_hooks(self) -> None:
            super().set_hooks()
            if not torch.cuda.is_available():
                self._hooks = [h for h in self._hooks if not isinstance(h, TimerHook)]
                self.hooks_dict = OrderedDict((h.name, h) for h in self._hooks)
            self.register_hook(EpochClock(), "EpochClock", "LOWEST")

        def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            started = time.perf_counter()
            try:
                return super().evaluate(*args, **kwargs)
            finally:
                self.off_clock += time.perf_counter() - started

        def save_model(self, save_name: str, save_path: str) -> None:
            started = time.perf_counter()
            super().save_model(save_name, save_path)
            self.off_clock += time.perf_counter() - started

    return Peer(config, build_net)


def train_worker(args: argparse.Namespace) -> dict[str, Any]:
    """One USB training run on the benchmark protocol; the final EMA metrics come from USB's `evaluate`."""
    from sklearn.metrics import recall_score

    method = args.methods[0]
    gpu = usb_device()
    started = time.perf_counter()
    cfg = semifer_config(method, args.epochs, args.iters, args.seed)
    pool = load_dataset(f"fer2013:{args.csv}?split=Training")
    labeled, unlabeled = apply_split(pool, Split.load(args.split_file))
    data = {
        "labeled": face_arrays(labeled),
        "unlabeled": face_arrays(unlabeled),
        "test": face_arrays(load_dataset(f"fer2013:{args.csv}?split=PublicTest")),
    }
    config = usb_config(method, cfg, len(labeled), args.workers, gpu)
    seed_like_usb(cfg.seed)
    algorithm = peer_algorithm(config, cfg, data, not args.usb_schedule)
    if gpu is not None:
        algorithm.model, algorithm.ema_model = algorithm.model.cuda(gpu), algorithm.ema_model.cuda(gpu)
    algorithm.train()
    minutes = (time.perf_counter() - started) / 60
    final = algorithm.evaluate("eval", return_logits=True)
    truth, predicted = data["test"][1], final["eval/logits"].argmax(1)
    per_class = recall_score(truth, predicted, labels=list(range(7)), average=None, zero_division=0)
    history = algorithm.hooks_dict["EpochClock"].history
    result: dict[str, Any] = {
        "accuracy": final["eval/top-1-acc"],
        "mean_class_accuracy": final["eval/balanced_acc"],
        "macro_f1": final["eval/F1"],
        "per_class_accuracy": dict(zip(CANONICAL, per_class.tolist(), strict=False)),
        "minutes": minutes,
        "history": history,
        "mask_rate": history[-1]["mask_rate"],
        "unlabeled": len(unlabeled),
        "device": "cpu" if gpu is None else torch.cuda.get_device_name(gpu),
        "usb_config": {k: getattr(config, k) for k in USB_KEYS if hasattr(config, k)},
    }
    if method == "flexmatch":
        beta = algorithm.hooks_dict["MaskingHook"].classwise_acc.cpu()
        result["thresholds"] = dict(zip(CANONICAL, (config.p_cutoff * beta / (2 - beta)).tolist(), strict=False))
    return result


def speed_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Median seconds of USB training steps on one pre-built batch, and this process's peak memory."""
    method = args.methods[0]
    gpu = usb_device()
    batches = np.load(args.batches)
    cfg = semifer_config(method, args.epochs, args.iters, args.seed)
    labeled = (batches["lb_x"], batches["lb_y"])
    data = {"labeled": labeled, "unlabeled": (batches["ulb_x"], batches["ulb_y"]), "test": labeled}
    config = usb_config(method, cfg, len(labeled[0]), 0, gpu)
    seed_like_usb(cfg.seed)
    algorithm = peer_algorithm(config, cfg, data, not args.usb_schedule, pool_size=args.pool_size)
    if gpu is not None:
        algorithm.model, algorithm.ema_model = algorithm.model.cuda(gpu), algorithm.ema_model.cuda(gpu)
    algorithm.call_hook("before_run")
    loaders = algorithm.loader_dict
    batch = algorithm.process_batch(**next(iter(loaders["train_lb"])), **next(iter(loaders["train_ulb"])))
    rss_before = peak_rss_mb()
    algorithm.model.train()
    seconds = []
    for _ in range(args.warmup + args.steps):
        started = time.perf_counter()
        algorithm.call_hook("before_train_step", "ParamUpdateHook")
        algorithm.out_dict, algorithm.log_dict = algorithm.train_step(**batch)
        algorithm.call_hook("after_train_step", "ParamUpdateHook")
        algorithm.call_hook("after_train_step", "EMAHook")
        algorithm.it += 1
        if gpu is not None:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    step = statistics.median(seconds[args.warmup :])
    images = config.batch_size * (1 + config.uratio)
    return {
        "step_seconds_median": step,
        "samples_per_s": images / step,
        "images_per_step": images,
        "peak_mem_mb": peak_rss_mb(),
        "rss_before_steps_mb": rss_before,
        "step_seconds": seconds,
        "warmup": args.warmup,
        "steps": args.steps,
        "scale": "cpu" if gpu is None else "gpu",
    }


def worker(args: argparse.Namespace) -> None:
    stand_in_trackers()
    result = train_worker(args) if args.worker == "train" else speed_worker(args)
    result.update(torch=torch.__version__, torch_threads=torch.get_num_threads(), python=sys.version.split()[0])
    Path(args.result).write_text(json.dumps(result, indent=1))


# ----------------------------------------------------------------------------------- driver (system python)
def run_worker(
    python: Path, mode: str, method: str, args: argparse.Namespace, extra: list[str], log: Path
) -> dict[str, Any] | None:
    """Run one worker in the USB venv (its output to `log`); its result, or None when it failed."""
    result = log.with_suffix(".json")
    result.unlink(missing_ok=True)
    cmd = [
        *module_command(__spec__.name, str(python)),
        "--worker",
        mode,
        "--methods",
        method,
        "--epochs",
        str(args.epochs),
        "--iters",
        str(args.iters),
        "--seed",
        str(args.seed),
        "--workers",
        str(args.workers),
        "--result",
        str(result),
        *extra,
        *(["--usb-schedule"] if args.usb_schedule else []),
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    return json.loads(result.read_text()) if done.returncode == 0 and result.is_file() else None


def worker_meta(result: dict[str, Any]) -> dict[str, Any]:
    """The machine as this driver sees it, with the worker's torch and threads (the venv's, not the driver's)."""
    return {
        **machine(),
        "torch": result["torch"],
        "torch_threads": result["torch_threads"],
        "python": result["python"],
        "venv": str(VENV.relative_to(ROOT)),
    }


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def accuracy(args: argparse.Namespace, python: Path, csv: Path, split_file: Path) -> None:
    budget = f"{args.epochs}x{args.iters}"
    for method in args.methods:
        label = f"{method} (USB cosine)" if args.usb_schedule else method
        log = RUN_DIR / "logs" / f"{label.replace(' ', '-').replace('(', '').replace(')', '')}-{budget}.log"
        result = run_worker(python, "train", method, args, ["--csv", str(csv), "--split-file", str(split_file)], log)
        if result is None:
            raise SystemExit(f"USB {method} failed ({last_line(log)}); log: {log}")
        history = result["history"]
        row = {
            "method": label,
            "toolkit": TOOLKIT,
            "budget": budget,
            "labels": args.labels,
            "seed": args.seed,
            "accuracy": result["accuracy"],
            "mean_class_accuracy": result["mean_class_accuracy"],
            "macro_f1": result["macro_f1"],
            "per_class_accuracy": result["per_class_accuracy"],
            "best_over_epochs_test_selected": max(r["test"]["accuracy"] for r in history if "test" in r),
            "minutes": result["minutes"],
            "images_per_s_median": statistics.median(r["images_per_s"] for r in history),
            "train_seconds": sum(r["epoch_seconds"] for r in history),
            "mask_rate": result["mask_rate"],
            "thresholds": result.get("thresholds"),
            "unlabeled": result["unlabeled"],
            "device": result["device"],
            "torch": result["torch"],
            "usb_config": result["usb_config"],
            "history": history,
            "command": command(),
            "log": str(log.relative_to(ROOT)),
            "machine": worker_meta(result),
        }
        blob = upsert_rows("usb_peer", [row], lambda r: (r["method"], r["budget"]))
        write_section("usb_peer", table(blob, args.labels))


def speed(args: argparse.Namespace, python: Path, csv: Path, split_file: Path) -> None:
    """One batch of the benchmark's images, written once, timed in a fresh venv process per method."""
    labeled, unlabeled = apply_split(load_dataset(f"fer2013:{csv}?split=Training"), Split.load(split_file))
    rng = np.random.default_rng(args.seed)
    lb_x, lb_y = face_arrays(labeled.subset(rng.choice(len(labeled), 64, replace=False)))
    ulb_x, ulb_y = face_arrays(unlabeled.subset(rng.choice(len(unlabeled), 64, replace=False)))
    batches = RUN_DIR / "speed_batch.npz"
    batches.parent.mkdir(parents=True, exist_ok=True)
    np.savez(batches, lb_x=lb_x, lb_y=lb_y, ulb_x=ulb_x, ulb_y=ulb_y)
    blob = load_json("usb_speed", {"rows": [], "failed": []})
    for method in args.methods:
        log = RUN_DIR / "logs" / f"speed-{method}.log"
        extra = [
            "--batches",
            str(batches),
            "--pool-size",
            str(len(unlabeled)),
            "--warmup",
            str(args.warmup),
            "--steps",
            str(args.steps),
        ]
        result = run_worker(python, "speed", method, args, extra, log)
        blob["failed"] = [f for f in blob.get("failed", []) if f["method"] != method]
        if result is None:
            blob["failed"].append(
                {"toolkit": TOOLKIT, "method": method, "error": last_line(log), "log": str(log.relative_to(ROOT))}
            )
        else:
            row = {
                "toolkit": TOOLKIT,
                "method": method,
                "scale": result["scale"],
                "step_seconds_median": result["step_seconds_median"],
                "samples_per_s": result["samples_per_s"],
                "peak_mem_mb": result["peak_mem_mb"],
                "torch": result["torch"],
                **{
                    k: result[k]
                    for k in (
                        "images_per_step",
                        "rss_before_steps_mb",
                        "step_seconds",
                        "warmup",
                        "steps",
                        "torch_threads",
                    )
                },
                "timed": "train_step + ParamUpdateHook (backward, SGD, scheduler) + EMAHook; data loading excluded",
                "command": command(),
                "machine": worker_meta(result),
            }
            blob["rows"] = [r for r in blob["rows"] if not (r["method"] == method and r["scale"] == row["scale"])]
            blob["rows"].append(row)
        save_json("usb_speed", blob)


def table(blob: dict[str, Any], labels: int) -> str:
    """USB's rows next to semifer's FixMatch / FlexMatch / Ada-CM rows of the same budget."""
    semifer_rows = load_json(f"fer2013_ssl_{labels}")["rows"]
    usb_rows = [r for r in blob["rows"] if r["labels"] == labels]
    schedule = "semifer's cosine 0.5 (1 + cos pi t) (rows tagged USB cosine: USB's cos(7 pi t / 16))"
    lines = [
        f"### USB as a peer: FixMatch and FlexMatch on FER2013, {labels} labels (CPU scale)",
        "",
        f"USB rows: {header(usb_rows[-1]['machine'])}" if usb_rows else "No USB rows yet.",
        "Microsoft's USB (`semilearn` 0.3.2, its algorithms, data pipeline, EMA and training loop, in its own venv) "
        "on the protocol of the FER2013 SSL table (`benchmarks/accuracy/fer2013_ssl.py`): the same split file, "
        "PublicTest, small_cnn with a plain head (semifer's net and init), 48 px, 64 labeled + 64 unlabeled per step, "
        "SGD 0.03 Nesterov, wd 5e-4, "
        f"{schedule}, EMA 0.99, tau 0.95, seed 0. Different by design: USB's views (6 px reflect-padded crop "
        "always + flip; strong adds its RandAugment(3, 5) with Cutout), its EMA of parameters only (BN statistics "
        "of the live model), its loaders and RNG streams; see the docstring of `benchmarks/peers/usb_peer.py`. "
        "Accuracy = final EMA model; mask rate = fraction of unlabeled images above their threshold, last epoch.",
        "",
        "| toolkit | method | budget | accuracy | mean-class acc | macro-F1 | best over epochs (test-selected) "
        "| mask rate | median img/s | minutes | torch | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    def by_method(entry: tuple[str, dict[str, Any], float | None]) -> str:
        return entry[1]["method"]

    for budget in sorted({r["budget"] for r in usb_rows}):
        peers = [
            ("semifer", r, r.get("subset1_fraction"))
            for r in semifer_rows
            if r["budget"] == budget and r["method"].split(" (")[0] in SEMIFER_PEERS
        ]
        ours = [("USB", r, r.get("mask_rate")) for r in usb_rows if r["budget"] == budget]
        for toolkit, r, mask in sorted(peers, key=by_method) + sorted(ours, key=by_method):
            lines.append(
                f"| {toolkit} | {r['method']} | {r['budget']} | {pct(r['accuracy'])} | "
                f"{pct(r['mean_class_accuracy'])} | {pct(r['macro_f1'])} | "
                f"{pct(r.get('best_over_epochs_test_selected'))} | {pct(mask)} | {r['images_per_s_median']:.0f} | "
                f"{r['minutes']:.1f} | {r.get('torch') or r['machine']['torch']} | `{r['command']}` |"
            )
    lines += [
        "",
        f"Raw numbers: `benchmarks/out/usb_peer.json` (USB), `benchmarks/out/fer2013_ssl_{labels}.json` (semifer).",
    ]
    return "\n".join(lines)


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument(
        "--methods", nargs="+", help=f"default: {' '.join(ACCURACY_METHODS)} (with --speed: {' '.join(SPEED_METHODS)})"
    )
    cli.add_argument("--labels", type=int, default=400)
    add_budget(cli, 20, 60)
    cli.add_argument("--seed", type=int, default=0)
    cli.add_argument("--workers", type=int, default=1, help="USB's num_workers (the unlabeled loader gets twice)")
    cli.add_argument("--usb-schedule", action="store_true", help="USB's cos(7 pi t / 16) instead of semifer's")
    cli.add_argument("--speed", action="store_true", help="time USB training steps -> benchmarks/out/usb_speed.json")
    cli.add_argument("--warmup", type=int, default=3)
    cli.add_argument("--steps", type=int, default=10)
    for hidden in ("--worker", "--result", "--csv", "--split-file", "--batches"):
        cli.add_argument(hidden, help=argparse.SUPPRESS)
    cli.add_argument("--pool-size", type=int, help=argparse.SUPPRESS)
    args = cli.parse_args()
    args.methods = args.methods or list(SPEED_METHODS if args.speed else ACCURACY_METHODS)
    if args.worker:
        worker(args)
        return
    if args.report_only:
        write_section("usb_peer", table(load_json("usb_peer"), args.labels))
        return
    python = ensure_venv(VENV)
    csv = data_root() / "fer2013" / "fer2013.csv.gz"
    split_file = fer2013_split_file(args.labels, args.seed)
    (speed if args.speed else accuracy)(args, python, csv, split_file)


if __name__ == "__main__":
    main()
