"""How OpenCV's Haar cascade frames FER2013 faces: the detection rate and the box size against the crop.

    python -m benchmarks.studies.haar_framing [--faces 200]

Each of the first `--faces` PublicTest faces is upscaled to a random side in 96-200 px (bicubic, seed 0) and
pasted in the middle of a grey canvas with 50 px around it; `HaarDetector` (semifer predict's default) runs on
it. For images with exactly one box: the box side / the pasted side and the box centre's offset from the
face's centre (in face sides). `semifer predict`'s default Haar margin is chosen from the median side ratio
so that the crop it takes frames a face as FER2013's crops do.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import command, fer2013_spec, header, load_json, machine, parser, save_json, write_section


def measure(n_faces: int) -> dict:
    from PIL import Image

    from semifer.data import load_dataset
    from semifer.inference.detect import HaarDetector

    faces = load_dataset(fer2013_spec("PublicTest")).pixels[:n_faces]
    detector = HaarDetector()
    rng = np.random.default_rng(0)
    ratios, dx, dy, counts = [], [], [], []
    for pixels in faces:
        side = int(rng.integers(96, 201))
        canvas = np.full((side + 100, side + 100, 3), 128, np.uint8)
        face = Image.fromarray(pixels).convert("RGB").resize((side, side), Image.BICUBIC)
        canvas[50 : 50 + side, 50 : 50 + side] = np.asarray(face)
        boxes = detector(canvas)
        counts.append(len(boxes))
        if len(boxes) == 1:
            x, y, w, h = boxes[0]
            ratios.append(w / side)
            dx.append((x + w / 2 - 50 - side / 2) / side)
            dy.append((y + h / 2 - 50 - side / 2) / side)
    counts_arr = np.array(counts)
    return {
        "faces": len(faces),
        "one_box": int((counts_arr == 1).sum()),
        "no_box": int((counts_arr == 0).sum()),
        "several_boxes": int((counts_arr > 1).sum()),
        "side_ratio_median": float(np.median(ratios)),
        "side_ratio_quartiles": [float(q) for q in np.percentile(ratios, [25, 75])],
        "centre_dx_median": float(np.median(dx)),
        "centre_dy_median": float(np.median(dy)),
        "margin_for_fer_framing": float((1 / np.median(ratios) - 1) / 2),
    }


def report(blob: dict) -> None:
    r = blob["result"]
    lines = [
        "### Haar face detection on FER2013 faces",
        "",
        f"Command: `{blob['command']}`.",
        header(blob["machine"]),
        "",
        f"{r['faces']} PublicTest faces, each upscaled to 96-200 px and pasted into a grey canvas: the "
        f"cascade found exactly one box in {r['one_box']}, none in {r['no_box']}, several in "
        f"{r['several_boxes']}. Box side / face side: median {r['side_ratio_median']:.3f} (quartiles "
        f"{r['side_ratio_quartiles'][0]:.3f}-{r['side_ratio_quartiles'][1]:.3f}); box centre offset "
        f"{r['centre_dx_median']:+.3f} / {r['centre_dy_median']:+.3f} face sides (x / y). A margin of "
        f"{r['margin_for_fer_framing']:.3f} x the box side per side gives back FER2013's framing: "
        f"`semifer predict` uses {blob['default_margin']} for `--detect haar`.",
        "",
        "Raw numbers: `benchmarks/out/haar_framing.json`.",
    ]
    write_section("haar_framing", "\n".join(lines))


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--faces", type=int, default=200)
    args = cli.parse_args()
    if args.report_only:
        report(load_json("haar_framing"))
        return
    from semifer.inference.detect import HaarDetector

    blob = {
        "machine": machine(),
        "command": command(),
        "result": measure(args.faces),
        "default_margin": HaarDetector.margin,
    }
    save_json("haar_framing", blob)
    report(blob)
    print(blob["result"])


if __name__ == "__main__":
    main()
