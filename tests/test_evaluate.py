import numpy as np

from semifer.engine.evaluate import compute_metrics, plot_confusion


def test_metrics_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 2])
    preds = np.array([0, 1, 1, 1, 0, 2])
    m = compute_metrics(labels, preds, 7)
    assert m.accuracy == 4 / 6
    assert m.per_class_accuracy == {"neutral": 0.5, "happy": 2 / 3, "sad": 1.0}
    assert np.isclose(m.mean_class_accuracy, (0.5 + 2 / 3 + 1) / 3)
    f1_neutral, f1_happy = 2 * 0.5 * 0.5 / 1.0, 2 * (2 / 3) * (2 / 3) / (4 / 3)
    assert np.isclose(m.macro_f1, (f1_neutral + f1_happy + 1.0) / 3)
    assert m.confusion[1] == [1, 2, 0, 0, 0, 0, 0]


def test_classes_the_model_lacks_are_reported_not_scored(tmp_path):
    labels = np.array([7, 7, 1, 6])  # two contempt images for a 7-class model
    preds = np.array([1, 1, 1, 0])
    m = compute_metrics(labels, preds, 7)
    assert m.unmapped == {"contempt": 2} and m.n == 2 and m.accuracy == 0.5
    assert "contempt 2" in m.summary()
    assert plot_confusion(m, tmp_path / "cm.png").stat().st_size > 1000


def test_predict_returns_the_feature_the_head_acts_on():
    import torch

    from semifer.data.registry import load_dataset
    from semifer.engine.evaluate import predict
    from semifer.models import FERNet

    torch.manual_seed(0)
    faces = load_dataset("synthetic:?n=10")
    model = FERNet("small_cnn", 7).eval()
    probs, feats = predict(model, faces, 48, torch.device("cpu"), batch_size=4, progress=False, features=True)
    assert probs.shape == (10, 7) and feats.shape[0] == 10
    logits = model.head(torch.from_numpy(feats))
    assert np.allclose(torch.softmax(logits, 1).detach().numpy(), probs, atol=1e-5)
    assert np.allclose(predict(model, faces, 48, torch.device("cpu"), progress=False), probs)
