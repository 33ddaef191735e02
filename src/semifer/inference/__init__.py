"""From a trained model to answers: `loading.load` (the one door to a trained model), `predictor.Predictor`
(photos, crops and video frames to per-face probabilities), `export` (safetensors, ONNX, model card)."""
