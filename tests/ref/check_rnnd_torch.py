"""tools/rnnd_torch.py both ways, against the rnnd binary:
  - a GRU made in PyTorch and saved with rnnd_torch.save: `rnnd predict` gives
    PyTorch's output (1e-5);
  - the demo sine model trained by rnnd, read with rnnd_torch.load into
    RNNModel (strict): PyTorch gives rnnd's prediction;
  - the demo chars model: PyTorch's greedy text equals `rnnd generate
    --temperature 0`;
  - a word lm and a z-scored series trained by rnnd, in PyTorch;
  - bidirectional models with dropout both ways (eval mode in PyTorch).
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



def train_and_load(tmp, name, job):
    """`rnnd train` on job, then the model in PyTorch: (path, net, cfg, meta)."""
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(job, f)
    model = os.path.join(tmp, name + ".safetensors")
    subprocess.run([rnnd, "train", "--job", path, "--out", model, "--quiet"], check=True,
                   capture_output=True)
    state, cfg, meta = rnnd_torch.load(model)
    net = rnnd_torch.RNNModel(cfg)
    net.load_state_dict(state)
    return model, net, cfg, meta


# a word lm trained by rnnd: PyTorch's next-word probabilities are rnnd's
with tempfile.TemporaryDirectory() as tmp:
    job = {"task": "lm", "tokens": "words", "hidden": 24, "embedding": 8, "epochs": 60, "batch": 4,
           "data": {"texts": ["I love recurrent neural networks.", "Neural networks learn.",
                              "I love learning."], "window": 4},
           "optimizer": {"name": "adam", "lr": 0.02}}
    model, net, cfg, meta = train_and_load(tmp, "talk", job)
    ids = rnnd_torch.token_ids(cfg, "I love recurrent neural")
    with torch.no_grad():
        y, _ = net(torch.tensor(ids).view(-1, 1))
    p = torch.softmax(y[-1, 0].double(), 0)
    got = predict(model, {"text": "I love recurrent neural", "top": 1})["next"][0]
    want = cfg["vocab"][int(p.argmax())]
    if got["token"] != want or abs(got["p"] - float(p.max())) > 1e-5:
        sys.exit("rnnd_torch: word lm: rnnd says %r %.6f, PyTorch %r %.6f" % (got["token"], got["p"], want, float(p.max())))
    print("rnnd_torch: rnnd word lm -> PyTorch: next %r p %.6f both" % (want, got["p"]))

    # a z-scored series trained by rnnd: PyTorch with the file's statistics
    rows = [[1000 + 100 * math.sin(t / 8), 1000 + 80 * math.cos(t / 8)] for t in range(200)]
    job = {"hidden": 16, "epochs": 5, "batch": 16,
           "data": {"series": rows, "window": 10, "target": 0, "normalize": "zscore"}}
    model, net, cfg, meta = train_and_load(tmp, "plant", job)
    sr = rnnd_torch.series(meta)
    x = torch.tensor([[(v - m) / s for v, m, s in zip(r, sr["mean"], sr["std"])] for r in rows[-10:]])
    with torch.no_grad():
        y, _ = net(x.view(10, 1, 2))
    t = sr["target"][0]
    want = float(y[-1, 0, 0]) * sr["std"][t] + sr["mean"][t]
    got = predict(model, {"sequence": rows[-10:]})["prediction"]
    if abs(got - want) > 1e-5 * abs(want):
        sys.exit("rnnd_torch: z-scored series: rnnd %.6f, PyTorch %.6f" % (got, want))
    print("rnnd_torch: rnnd z-scored series -> PyTorch: %.4f vs rnnd %.4f (raw units)" % (want, got))

    # bidirectional with dropout, both ways: a PyTorch LSTM classifier saved
    # with rnnd_torch.save gives its eval-mode probabilities in rnnd, and a
    # GRU trained by rnnd loads strictly (the _reverse tensors) into PyTorch
    cfg = rnnd_torch.config("classify", "many_to_one", "lstm", input_size=3, hidden=6, layers=2,
                            labels=["down", "up"], bidirectional=True, dropout=0.4)
    net = rnnd_torch.RNNModel(cfg).eval()
    path = os.path.join(tmp, "bi_torch.safetensors")
    rnnd_torch.save(net, path, cfg)
    seq = torch.randn(9, 1, 3)
    with torch.no_grad():
        want = torch.softmax(net.last(seq)[0].double(), 0).tolist()
    got = predict(path, {"sequence": seq[:, 0].tolist()})["probabilities"]
    err = max(abs(got[k] - w) for k, w in zip(cfg["labels"], want))
    if err > 1e-5:
        sys.exit("rnnd_torch: bidirectional LSTM: rnnd %r, PyTorch %r" % (got, want))
    print("rnnd_torch: PyTorch bidirectional LSTM (dropout 0.4, eval) -> rnnd: max |diff| %.2e" % err)
    job = {"cell": "gru", "hidden": 8, "layers": 2, "bidirectional": True, "dropout": 0.2,
           "epochs": 3, "data": {"generator": "sine", "samples": 32, "window": 10}}
    model, net, cfg, meta = train_and_load(tmp, "bi_rnnd", job)
    net.eval()
    window = [math.sin(0.3 * t) for t in range(10)]
    with torch.no_grad():
        want = float(net.last(torch.tensor(window).view(10, 1, 1))[0, 0])
    got = predict(model, {"sequence": window})["prediction"]
    if abs(got - want) > 1e-5 * max(1, abs(want)):
        sys.exit("rnnd_torch: bidirectional GRU by rnnd: rnnd %.7f, PyTorch %.7f" % (got, want))
    print("rnnd_torch: rnnd bidirectional GRU -> PyTorch: %.6f vs rnnd %.6f" % (want, got))
