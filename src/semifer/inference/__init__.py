"""From a trained model to answers: `loading.load` (a predictor for a trained model), `predictor.Predictor`
(photos, crops and video frames to per-face probabilities), `export` (safetensors, ONNX, model card), `batch`
(predictions and features over a whole FaceSet)."""
