"""Which faces to label, judged cheaply: a linear probe on the built-in representation's frozen features.

    python -m benchmarks.studies.selection_probe [--budgets 100 400 1000] [--seeds 0 1 2]

FER2013 Training less 3,589 held-out validation faces is the pool, as a simulated person: a face's label is
read only once it is chosen. Each selection (`uniform` random, the Ada-CM `stratified` protocol, which reads the
labels to balance classes, `kcenter`, `typiclust`) picks the budget from the built-in representation's
embedding; the two-round ones (`uniform+margin`, `typiclust+margin`) pick half the budget by their first
strategy, fit the probe on it, and pick the other half where that probe is least sure, within the embedding's
clusters (`semifer select --strategy margin`). A logistic regression on the chosen faces' frozen features (C by
3-fold cross-validation on those faces alone) is scored on the validation faces (which choose `semifer
select`'s default and the first round of the README's loop) and on PublicTest.
This ranks selections without fine-tuning; semifer's methods fine-tune the whole network, so the gaps here are a
first indication, not the fine-tuned result.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.common import (
    add_seeds,
    command,
    fer2013_spec,
    header,
    load_json,
    machine,
    mean_sd,
    parser,
    save_json,
    write_section,
)
from semifer.data import load_dataset
from semifer.data.splits import make_split
from semifer.inference.batch import features
from semifer.models import frozen_model
from semifer.selection import select, select_uncertain
from semifer.weights import REPRESENTATION

ONE_ROUND = ("uniform", "stratified", "kcenter", "typiclust")
TWO_ROUNDS = ("uniform+margin", "typiclust+margin")
SELECTIONS = (*ONE_ROUND, *TWO_ROUNDS)
VAL_FACES, VAL_SEED = 3589, 1234


def chosen_indices(selection: str, pool, embedding: np.ndarray, budget: int, seed: int) -> list[int]:
    """The pool indices a one-round selection picks."""
    if selection == "stratified":
        split = make_split(pool, f"adacm:{budget}", seed)
        position = {face_id: i for i, face_id in enumerate(pool.ids)}
        return [position[face_id] for face_id in split.labeled]
    return select(embedding, budget, "random" if selection == "uniform" else selection, seed).indices


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, seed: int):
    """A logistic regression on standardised features, C by 3-fold cross-validation on the chosen faces."""
    search = LogisticRegressionCV(
        Cs=np.logspace(-3, 1, 9).tolist(), cv=KFold(3, shuffle=True, random_state=seed), max_iter=2000
    )
    return make_pipeline(StandardScaler(), search).fit(train_x, train_y)


def probe(train_x: np.ndarray, train_y: np.ndarray, scored: dict[str, tuple], seed: int) -> dict[str, float]:
    """`{name}_accuracy` of a linear probe fitted on the chosen faces, for each scored set."""
    clf = fit_probe(train_x, train_y, seed)
    return {f"{name}_accuracy": float((clf.predict(x) == y).mean()) for name, (x, y) in scored.items()}


def two_rounds(
    selection: str, pool, embedding: np.ndarray, budget: int, seed: int, model: Callable[[list[int]], np.ndarray]
) -> list[int]:
    """A two-round selection (`STRATEGY+margin`): half the budget by its first strategy, then the other half
    where `model(first)` (class probabilities over the pool of a model trained on the first half's labels) is
    least sure, one face per uncovered cluster of the embedding."""
    first = chosen_indices(selection.split("+")[0], pool, embedding, budget // 2, seed)
    second = select_uncertain(embedding, model(first), budget - len(first), "margin", seed, first).indices
    return first + second


def picked(selection: str, pool, embedding: np.ndarray, budget: int, seed: int) -> list[int]:
    """The pool indices a selection picks; a two-round one reveals its first half's labels to fit the probe
    whose margin picks the second half."""
    if selection not in TWO_ROUNDS:
        return chosen_indices(selection, pool, embedding, budget, seed)

    def probe_probabilities(first: list[int]) -> np.ndarray:
        clf = fit_probe(embedding[first], pool.labels[first], seed)
        probabilities = np.zeros((len(pool), pool.num_classes))
        probabilities[:, clf.classes_] = clf.predict_proba(embedding)
        return probabilities

    return two_rounds(selection, pool, embedding, budget, seed, probe_probabilities)


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--budgets", nargs="+", type=int, default=[100, 400, 1000])
    add_seeds(cli, [0, 1, 2])
    args = cli.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn's notices of coming defaults
    if args.report_only:
        report(load_json("selection_probe"))
        return
    training = load_dataset(fer2013_spec("Training"))
    held_out = np.random.default_rng(VAL_SEED).permutation(len(training))
    val, pool = training.subset(held_out[:VAL_FACES]), training.subset(np.sort(held_out[VAL_FACES:]))
    test = load_dataset(fer2013_spec("PublicTest"))
    model = frozen_model(REPRESENTATION).eval()
    with torch.inference_mode():
        pool_x, val_x, test_x = (features(model, faces, 48, progress=False) for faces in (pool, val, test))
    rows = []
    for budget in args.budgets:
        for seed in args.seeds:
            for selection in SELECTIONS:
                started = time.perf_counter()
                idx = picked(selection, pool, pool_x, budget, seed)
                labels = pool.labels[idx]  # revealed only now
                rows.append(
                    {
                        "selection": selection,
                        "labels": len(idx),
                        "seed": seed,
                        **probe(pool_x[idx], labels, {"val": (val_x, val.labels), "test": (test_x, test.labels)}, seed),
                        "classes_covered": int(len(set(labels.tolist()))),
                        "smallest_class": int(np.bincount(labels, minlength=7).min()),
                        "seconds": time.perf_counter() - started,
                        "evaluation": f"linear probe on frozen {REPRESENTATION} features, PublicTest",
                    }
                )
                print(f"{budget} {selection} seed {seed}: val {100 * rows[-1]['val_accuracy']:.2f}%", flush=True)
    blob = {"machine": machine(), "command": command(), "rows": rows}
    save_json("selection_probe", blob)
    report(blob)


def report(blob: dict) -> None:
    rows = blob["rows"]
    budgets = sorted({r["labels"] for r in rows if r["selection"] != "stratified"})
    lines = [
        "### Which faces to label: selections judged by a linear probe",
        "",
        "FER2013 Training less 3,589 held-out validation faces as the unlabeled pool, labels revealed only for "
        "the chosen faces; a logistic regression on the built-in representation's frozen features (C by 3-fold "
        "CV on the chosen faces) scored on the validation faces and on PublicTest. Mean ± sd over seeds (n); "
        "*stratified* is the Ada-CM protocol, which reads every label to balance the classes, so it is a "
        "reference a real person cannot use. A frozen probe ranks selections without fine-tuning: a first "
        "indication, not the fine-tuned result. `semifer select`'s default is the best on the validation faces.",
        header(blob["machine"]),
    ]
    for scored in ("val", "test"):
        lines += ["", f"{'Validation faces' if scored == 'val' else 'PublicTest'}:", ""]
        lines += ["| labels | " + " | ".join(SELECTIONS) + " |", "|---" * (len(SELECTIONS) + 1) + "|"]
        for budget in budgets:
            cells = []
            for selection in SELECTIONS:
                accs = [
                    100 * r[f"{scored}_accuracy"]
                    for r in rows
                    if r["selection"] == selection and abs(r["labels"] - budget) < 5
                ]
                cells.append(mean_sd(accs))
            lines.append(f"| {budget} | " + " | ".join(cells) + " |")
    lines += ["", f"Command: `{blob['command']}`. Raw numbers: `benchmarks/out/selection_probe.json`."]
    write_section("selection_probe", "\n".join(lines))


if __name__ == "__main__":
    main()
