"""tools/rnnd_torch.py both ways, against the rnnd binary:
  - a GRU made in PyTorch and saved with rnnd_torch.save: `rnnd predict` gives
    PyTorch's output (1e-5);
  - the demo sine model trained by rnnd, read with rnnd_torch.load into
    RNNModel (strict): PyTorch gives rnnd's prediction;
  - the demo chars model: PyTorch's greedy text equals `rnnd generate
    --temperature 0`.
Run by `make test` (tests/ops/check.sh) where /usr/bin/python3 has torch.
Usage: /usr/bin/python3 tests/ref/check_rnnd_torch.py RNND DEMO_MODELS_DIR
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import rnnd_torch  # noqa: E402

rnnd, demo = sys.argv[1], sys.argv[2]
torch.manual_seed(7)


def predict(model, request):
    out = subprocess.run([rnnd, "predict", "--model", model], input=json.dumps(request),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


with tempfile.TemporaryDirectory() as tmp:
    cfg = rnnd_torch.config("regression", "many_to_one", "gru", input_size=2, hidden=7, output_size=3, layers=2)
    net = rnnd_torch.RNNModel(cfg)
    path = os.path.join(tmp, "made_in_torch.safetensors")
    rnnd_torch.save(net, path, cfg)
    seq = torch.randn(13, 1, 2)
    with torch.no_grad():
        want = net(seq)[0][-1, 0].tolist()
    got = predict(path, {"sequence": seq[:, 0].tolist()})["prediction"]
    err = max(abs(a - b) for a, b in zip(got, want))
    assert err < 1e-5, (got, want)
    print("rnnd_torch: PyTorch GRU -> rnnd predict: max |diff| %.2e" % err)

state, cfg, meta = rnnd_torch.load(os.path.join(demo, "sine.safetensors"))
net = rnnd_torch.RNNModel(cfg)
net.load_state_dict(state, strict=True)
window = [math.sin(i) for i in range(50)]
with torch.no_grad():
    want = net(torch.tensor(window).view(50, 1, 1))[0][-1, 0, 0].item()
got = predict(os.path.join(demo, "sine.safetensors"), {"sequence": window})["prediction"]
assert abs(got - want) < 1e-5, (got, want)
print("rnnd_torch: rnnd sine -> PyTorch: %.6f vs rnnd %.6f (sin(50) = %.6f)" % (want, got, math.sin(50)))

state, cfg, meta = rnnd_torch.load(os.path.join(demo, "chars.safetensors"))
net = rnnd_torch.RNNModel(cfg)
net.load_state_dict(state, strict=True)
vocab = cfg["vocab"]
prefix, n = "The engine", 60
with torch.no_grad():
    y, st = net(torch.tensor([vocab.index(c) for c in prefix]).view(-1, 1))
    text = ""
    for _ in range(n):
        k = int(y[-1, 0].argmax())
        text += vocab[k]
        y, st = net(torch.tensor([[k]]), st)
got = subprocess.run([rnnd, "generate", "--model", os.path.join(demo, "chars.safetensors"), "--prefix", prefix,
                      "--length", str(n), "--temperature", "0"], capture_output=True, text=True, check=True).stdout
assert got == prefix + text + "\n", (got, text)
print("rnnd_torch: rnnd chars -> PyTorch greedy text equals rnnd's: %r" % text[:40])
