#!/usr/bin/python3
"""PyTorch <-> rnnd model-file interoperability cases.

Writes tests/ref/models/:

  <case>.safetensors      a model built in PyTorch (or trained by rnnd), saved
                          with PyTorch state_dict names and rnnd's metadata
  <case>.request.json     a request for `rnnd predict`
  <case>.expected.json    the reply PyTorch computes for it (same shape as
                          rnnd's reply)

and the one-SGD-step case (sgd_step.job.json, sgd_step.init.safetensors,
sgd_step.expected.safetensors): `rnnd train --job sgd_step.job.json --init
sgd_step.init.safetensors` must give the weights PyTorch has after one step.

The rnnd_trained* cases go the other way: rnnd trains a small job, the model
file is loaded by hand into PyTorch (load_state_dict(strict=True)), PyTorch
computes the reply, and the script checks `rnnd predict` agrees. Training only
runs with --retrain or when the .safetensors is missing, so a plain re-run
rewrites byte-identical files.

    /usr/bin/python3 tests/ref/gen_models.py             # (re)write the files
    /usr/bin/python3 tests/ref/gen_models.py --retrain   # also retrain rnnd_trained*
    /usr/bin/python3 tests/ref/gen_models.py --verify    # also compare every case
                                                         # with build/rnnd

safetensors is read and written by hand (json + struct); the python package is
not needed. Needs Debian's python3-torch (1.13).
"""

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import rnnd_torch  # noqa: E402  (the safetensors reader users get)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT_DIR = os.path.join(HERE, "models")
RNND = os.environ.get("RNND") or os.path.join(ROOT, "build", "rnnd")

CREATED = "2026-01-01T00:00:00Z"
SOURCE = "tests/ref/gen_models.py"
TOL = 1e-5           # relative to the largest |value| of a field
MIN_MARGIN = 1e-3    # smallest top-1/top-2 logit gap we accept for an argmax


# --------------------------------------------------------------------------- model

# embedding (token input only) -> rnn (time-major) -> head: the module users get
Net = rnnd_torch.RNNModel


def make_config(task, mode, cell, activation, input_size, hidden, layers, output_size,
                embedding=0, vocab="", labels=None, bidirectional=False, dropout=0.0):
    c = {
        "task": task, "mode": mode, "cell": cell, "activation": activation,
        "input_size": input_size, "hidden": hidden, "layers": layers,
        "output_size": output_size, "embedding": embedding, "vocab": vocab,
    }
    if labels is not None:
        c["labels"] = list(labels)
    if bidirectional:
        c["bidirectional"] = True
    if dropout:
        c["dropout"] = dropout
    return c


# --------------------------------------------------------------------------- safetensors

def metadata(cfg, extra=None):
    md = {
        "rnnd.format": "1",
        "rnnd.config": json.dumps(cfg, separators=(",", ":"), ensure_ascii=False),
        "rnnd.created": CREATED,
        "rnnd.epochs": "0",
        "rnnd.loss_history": "[]",
        "rnnd.source": SOURCE,
    }
    if extra:
        md.update(extra)
    return md


def write_safetensors(path, state_dict, md):
    header = {"__metadata__": md}
    blobs = []
    off = 0
    for name, t in state_dict.items():
        a = t.detach().to(torch.float32).contiguous().cpu().numpy()
        b = a.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Returns (metadata dict, {name: float32 tensor}), checking the layout."""
    state, _, md = rnnd_torch.load(path)
    return md, state


def load_model(path):
    """A model file (rnnd's or ours) as a Net, strictly."""
    md, tensors = read_safetensors(path)
    cfg = json.loads(md["rnnd.config"])
    net = Net(cfg)
    net.load_state_dict(tensors, strict=True)
    net.eval()
    return net, cfg, md


# --------------------------------------------------------------------------- replies

def f32(v):
    """A float32 value as the shortest decimal that reads back as the same float32."""
    return float("%.9g" % float(v))


def f64(v):
    return float("%.12g" % float(v))


def vec(t, scalar=True):
    vals = [f32(v) for v in t.reshape(-1).tolist()]
    return vals[0] if scalar and len(vals) == 1 else vals


def argmax_first(vals):
    best = 0
    for k in range(1, len(vals)):
        if vals[k] > vals[best]:
            best = k
    return best


def margin(vals):
    s = sorted(vals, reverse=True)
    return s[0] - s[1]


def as_input(cfg, seq):
    """A request sequence as the model's (T, 1, X) or (T, 1) input."""
    if cfg["vocab"]:   # token input: embedding or one-hot, RNNModel decides
        vocab = list(cfg["vocab"])
        return torch.tensor([[vocab.index(ch)] for ch in seq], dtype=torch.long)
    X = cfg["input_size"]
    rows = [[v] if X == 1 else list(v) for v in seq]
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), 1, X)


def predict_one(net, cfg, seq, req, margins):
    """The reply object of one sequence, as rnnd's predict_one builds it."""
    O = cfg["output_size"]
    obj = {}
    with torch.no_grad():
        y, state = net(as_input(cfg, seq))
        # many_to_one: the head over the final state (both directions' when
        # bidirectional); many_to_many: the last step's output
        last = net.last(as_input(cfg, seq))[0] if cfg["mode"] == "many_to_one" else y[-1, 0]
        if cfg["task"] == "classify":
            logits = [float(v) for v in last.tolist()]
            best = argmax_first(logits)
            margins.append(margin(logits))
            mx = logits[best]
            ex = [math.exp(v - mx) for v in logits]
            s = math.fsum(ex)
            labels = cfg.get("labels")
            obj["label"] = labels[best] if labels else best
            # keyed by label when the model names its classes
            probs = [f64(e / s) for e in ex]
            obj["probabilities"] = dict(zip(labels, probs)) if labels else probs
        else:
            obj["prediction"] = vec(last)
        steps = req.get("steps", 0)
        if steps > 0:
            assert O == cfg["input_size"]
            fc = []
            out = last
            for k in range(steps):
                fc.append(vec(out))
                if k + 1 < steps:
                    yy, state = net(out.reshape(1, 1, O), state)
                    out = yy[-1, 0]
            obj["forecast"] = fc
        if req.get("return_sequences"):
            obj["outputs"] = [vec(y[t, 0]) for t in range(y.shape[0])]
    return obj


def generate_greedy(net, cfg, prefix, length, margins):
    vocab = list(cfg["vocab"])
    tok = [vocab.index(ch) for ch in prefix]
    assert tok, "greedy generation here needs a prefix"
    out = []
    with torch.no_grad():
        state = None
        if len(tok) > 1:
            _, state = net(torch.tensor(tok[:-1], dtype=torch.long).reshape(-1, 1), state)
        cur = tok[-1]
        for _ in range(length):
            y, state = net(torch.tensor([[cur]], dtype=torch.long), state)
            logits = [float(v) for v in y[-1, 0].tolist()]
            margins.append(margin(logits))
            cur = argmax_first(logits)
            out.append(vocab[cur])
    return "".join(out)


def reply(net, cfg, name, req):
    """PyTorch's reply to req, shaped like `rnnd predict`'s."""
    margins = []
    r = {"model": name, "version": 1}
    if cfg["task"] == "charlm":
        assert req.get("temperature") == 0
        # greedy from a prefix draws nothing: rnnd reports no seed
        r["text"] = generate_greedy(net, cfg, req["text"], req["length"], margins)
    elif "sequences" in req:
        r["predictions"] = [predict_one(net, cfg, s, req, margins) for s in req["sequences"]]
    else:
        r.update(predict_one(net, cfg, req["sequence"], req, margins))
    if margins and min(margins) < MIN_MARGIN:
        raise SystemExit("%s: an argmax is too close to call (logit gap %.3g)" % (name, min(margins)))
    return r, (min(margins) if margins else None)


# --------------------------------------------------------------------------- comparison

def _fields(x, path, out):
    """Numeric leaves grouped by field: list indices are folded into the field,
    except the index into "predictions" (one field set per sequence)."""
    if isinstance(x, dict):
        for k, v in x.items():
            _fields(v, path + (k,), out)
    elif isinstance(x, list):
        for i, v in enumerate(x):
            _fields(v, path + ((i,) if path and path[-1] == "predictions" else ()), out)
    else:
        out.setdefault(path, []).append(x)


def field_name(path):
    return ".".join("[%d]" % p if isinstance(p, int) else p for p in path).replace(".[", "[")


def _shape(x):
    if isinstance(x, dict):
        return {k: _shape(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_shape(v) for v in x]
    if isinstance(x, float) or (isinstance(x, int) and not isinstance(x, bool)):
        return "num"
    return type(x).__name__


def compare_replies(expected, got):
    """[(field, kind, error or mismatch text, ok)]; numbers: max |diff| over
    the field's max |expected|."""
    res = []
    if _shape(expected) != _shape(got):
        return [("<structure>", "shape", "expected %s, got %s" % (json.dumps(_shape(expected)),
                                                                 json.dumps(_shape(got))), False)]
    fe, fg = {}, {}
    _fields(expected, (), fe)
    _fields(got, (), fg)
    for path, ev in fe.items():
        gv = fg[path]
        name = field_name(path)
        # floats: relative error; ints (version, label index, seed) and strings: exact
        if all(isinstance(v, float) for v in ev):
            scale = max(abs(v) for v in ev) or 1.0
            err = max(abs(a - b) for a, b in zip(ev, gv)) / scale
            res.append((name, "rel", err, err < TOL))
        else:
            res.append((name, "exact", "match" if ev == gv else "%r != %r" % (ev, gv), ev == gv))
    return res


def run_predict(model_path, request_path):
    p = subprocess.run([RNND, "predict", "--model", model_path, "--input", request_path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError("rnnd predict %s: exit %d: %s" % (model_path, p.returncode, p.stderr.strip()))
    return json.loads(p.stdout)


def compare_tensors(expected, got, init=None):
    """[(tensor, rel error of the weights, rel error of the update or None, ok)]."""
    res = []
    for name, e in expected.items():
        g = got[name]
        scale = float(e.abs().max()) or 1.0
        err = float((e - g).abs().max()) / scale
        uerr = None
        if init is not None:
            de, dg = e - init[name], g - init[name]
            us = float(de.abs().max()) or 1.0
            uerr = float((de - dg).abs().max()) / us
        res.append((name, err, uerr, err < TOL))
    return res


# --------------------------------------------------------------------------- files

def write_json(path, obj, indent=None):
    with open(path, "w", encoding="utf-8") as f:
        if indent is None:
            f.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))
        else:
            f.write(json.dumps(obj, indent=indent, ensure_ascii=False))
        f.write("\n")


def out(name):
    return os.path.join(OUT_DIR, name)


def rnum(g, n, scale=1.0):
    """n numbers from generator g, rounded to 4 decimals (exact in the JSON)."""
    return [round(float(v) * scale, 4) for v in (torch.rand(n, generator=g) * 2 - 1).tolist()]


def numeric_seq(g, T, X, scale=1.0):
    if X == 1:
        return rnum(g, T, scale)
    return [rnum(g, X, scale) for _ in range(T)]


def token_seq(g, T, vocab):
    idx = torch.randint(len(vocab), (T,), generator=g).tolist()
    return "".join(vocab[i] for i in idx)


# --------------------------------------------------------------------------- 1. PyTorch -> rnnd

CHARLM_VOCAB = " .adehlnorst"   # 12 characters, token i = i-th character


def forward_cases():
    C = make_config
    return [
        # name, seed, config, request builder, weight scale
        ("rnn_tanh", 101,
         C("regression", "many_to_one", "rnn", "tanh", 1, 8, 1, 1),
         lambda g: {"sequence": numeric_seq(g, 20, 1), "return_sequences": True}, 1.0),
        ("rnn_relu", 102,
         C("regression", "many_to_many", "rnn", "relu", 3, 10, 2, 2),
         lambda g: {"sequence": numeric_seq(g, 15, 3), "return_sequences": True}, 1.0),
        ("lstm", 103,
         C("regression", "many_to_one", "lstm", "tanh", 1, 12, 2, 1),
         lambda g: {"sequence": numeric_seq(g, 25, 1), "steps": 7, "return_sequences": True}, 1.0),
        ("gru", 104,
         C("regression", "many_to_one", "gru", "tanh", 2, 9, 1, 2),
         lambda g: {"sequence": numeric_seq(g, 18, 2), "steps": 4}, 1.0),
        ("lstm_classify", 105,
         C("classify", "many_to_one", "lstm", "tanh", 3, 10, 1, 4, labels=["a", "b", "c", "d"]),
         lambda g: {"sequences": [numeric_seq(g, T, 3, 2.0) for T in (12, 25, 37)]}, 1.0),
        ("gru_classify_tokens", 106,
         C("classify", "many_to_one", "gru", "tanh", 7, 8, 1, 3, embedding=5, vocab="abcdefg"),
         lambda g: {"sequences": [token_seq(g, T, "abcdefg") for T in (10, 18, 30)]}, 1.0),
        # seed 133: greedy text that is not one repeated character (checked gap >= 1e-2)
        ("lstm_charlm", 133,
         C("charlm", "many_to_many", "lstm", "tanh", len(CHARLM_VOCAB), 16, 2, len(CHARLM_VOCAB),
           embedding=6, vocab=CHARLM_VOCAB),
         lambda g: {"text": "the sea ", "length": 30, "temperature": 0, "seed": 1}, 3.0),
        # one-hot token input (embedding 0): rnn.weight_ih_l0 is (G*H, V)
        ("rnn_charlm_onehot", 134,
         C("charlm", "many_to_many", "rnn", "tanh", len(CHARLM_VOCAB), 16, 1, len(CHARLM_VOCAB),
           embedding=0, vocab=CHARLM_VOCAB),
         lambda g: {"text": "the sea ", "length": 30, "temperature": 0, "seed": 1}, 3.0),
        ("gru_classify_onehot", 107,
         C("classify", "many_to_one", "gru", "tanh", 7, 8, 2, 3, embedding=0, vocab="abcdefg"),
         lambda g: {"sequences": [token_seq(g, T, "abcdefg") for T in (10, 18, 30)]}, 1.0),
        # bidirectional (the *_reverse tensors, head [O, 2H]) with dropout between
        # the layers, which eval mode leaves out
        ("gru_bi", 108,
         C("regression", "many_to_one", "gru", "tanh", 2, 9, 2, 1, bidirectional=True, dropout=0.3),
         lambda g: {"sequences": [numeric_seq(g, T, 2) for T in (14, 14, 21)],
                    "return_sequences": True}, 1.0),
        ("lstm_bi", 109,
         C("regression", "many_to_many", "lstm", "tanh", 3, 10, 1, 2, bidirectional=True),
         lambda g: {"sequence": numeric_seq(g, 17, 3), "return_sequences": True}, 1.0),
        ("lstm_bi_classify_tokens", 110,
         C("classify", "many_to_one", "lstm", "tanh", 7, 8, 2, 3, embedding=5, vocab="abcdefg",
           labels=["neg", "neu", "pos"], bidirectional=True, dropout=0.2),
         lambda g: {"sequences": [token_seq(g, T, "abcdefg") for T in (9, 9, 26)]}, 1.5),
        ("rnn_bi_relu", 111,
         C("regression", "many_to_one", "rnn", "relu", 1, 6, 3, 1, bidirectional=True, dropout=0.5),
         lambda g: {"sequence": numeric_seq(g, 30, 1), "return_sequences": True}, 1.0),
    ]


def gen_forward(log):
    for name, seed, cfg, make_req, wscale in forward_cases():
        torch.manual_seed(seed)
        net = Net(cfg)
        if wscale != 1.0:
            with torch.no_grad():
                for p in net.parameters():
                    p.mul_(wscale)
        net.eval()
        g = torch.Generator().manual_seed(seed)
        req = make_req(g)
        exp, m = reply(net, cfg, name, req)
        write_safetensors(out(name + ".safetensors"), net.state_dict(), metadata(cfg))
        write_json(out(name + ".request.json"), req)
        write_json(out(name + ".expected.json"), exp)
        log("%-22s written%s%s" % (name, "" if m is None else "  (min argmax logit gap %.3g)" % m,
                                   "  text %r" % exp["text"] if "text" in exp else ""))


# --------------------------------------------------------------------------- 2. rnnd -> PyTorch

REVERSE = [
    ("rnnd_trained",
     {"task": "regression", "cell": "gru", "hidden": 8, "layers": 2,
      "data": {"generator": "sine", "samples": 40, "window": 12},
      "epochs": 3, "batch": 8, "init": {"seed": 5}, "optimizer": {"name": "adam", "lr": 0.01}},
     {"sequence": [round(math.sin(20 + 0.5 * t), 4) for t in range(12)], "steps": 5,
      "return_sequences": True}),
    ("rnnd_trained_charlm",
     {"task": "charlm", "cell": "lstm", "hidden": 16, "layers": 1, "embedding": 8,
      "data": {"text": "the cat sat on the mat. the dog sat on the log. " * 6, "window": 16},
      "epochs": 40, "batch": 4, "init": {"seed": 3}, "optimizer": {"name": "adam", "lr": 0.02}},
     {"text": "the d", "length": 30, "temperature": 0, "seed": 1}),
    # bidirectional with dropout: PyTorch loads the _reverse tensors strictly
    ("rnnd_trained_bi",
     {"task": "regression", "cell": "lstm", "hidden": 8, "layers": 2, "bidirectional": True,
      "dropout": 0.25, "data": {"generator": "sine", "samples": 40, "window": 12},
      "epochs": 3, "batch": 8, "init": {"seed": 7}, "optimizer": {"name": "adam", "lr": 0.01}},
     {"sequences": [[round(math.sin(s + 0.5 * t), 4) for t in range(12)] for s in (3, 20)],
      "return_sequences": True}),
    ("rnnd_trained_onehot",
     {"task": "charlm", "cell": "gru", "hidden": 16, "layers": 1, "embedding": 0,
      "data": {"text": "the cat sat on the mat. the dog sat on the log. " * 6, "window": 16},
      "epochs": 40, "batch": 4, "init": {"seed": 3}, "optimizer": {"name": "adam", "lr": 0.02}},
     {"text": "the d", "length": 30, "temperature": 0, "seed": 1}),
]


def gen_reverse(log, retrain):
    failures = []
    for name, job, req in REVERSE:
        jobf, model = out(name + ".job.json"), out(name + ".safetensors")
        write_json(jobf, job, indent=1)
        if retrain or not os.path.exists(model):
            if not os.access(RNND, os.X_OK):
                raise SystemExit("%s is missing: build it with make -C %s" % (RNND, ROOT))
            p = subprocess.run([RNND, "train", "--job", jobf, "--out", model, "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                raise SystemExit("rnnd train %s: %s" % (jobf, p.stderr.strip()))
            log("%-22s trained by rnnd (final loss %s)" % (name, json.loads(p.stdout)["final_loss"]))
        net, cfg, _ = load_model(model)   # strict=True: names and shapes match
        exp, m = reply(net, cfg, name, req)
        write_json(out(name + ".request.json"), req)
        write_json(out(name + ".expected.json"), exp)
        if os.access(RNND, os.X_OK):
            got = run_predict(model, out(name + ".request.json"))
            res = compare_replies(exp, got)
            for field, kind, err, ok in res:
                log("%-22s %-28s %s%s" % (name, field, ("%.3g" % err) if kind == "rel" else err,
                                          "" if ok else "   FAIL"))
            failures += [(name, f) for f, _, _, ok in res if not ok]
        else:
            log("%-22s (no %s: rnnd predict not checked)" % (name, RNND))
    if failures:
        raise SystemExit("rnnd predict disagrees with PyTorch on an rnnd-trained model: %s" % failures)


# --------------------------------------------------------------------------- 3. one SGD step

SGD_SEED = 201
SGD_LR = 0.1


def gen_sgd_step(log):
    cfg = make_config("regression", "many_to_one", "lstm", "tanh", 1, 6, 1, 1)
    torch.manual_seed(SGD_SEED)
    net = Net(cfg)
    g = torch.Generator().manual_seed(SGD_SEED)
    B, T = 5, 10
    seqs = [rnum(g, T) for _ in range(B)]
    targets = rnum(g, B)
    job = {"task": "regression", "mode": "many_to_one", "cell": "lstm", "hidden": 6,
           "data": {"sequences": seqs, "targets": targets},
           "epochs": 1, "batch": B, "shuffle": False, "validation": 0,
           "optimizer": {"name": "sgd", "lr": SGD_LR}}
    write_json(out("sgd_step.job.json"), job, indent=1)
    write_safetensors(out("sgd_step.init.safetensors"), net.state_dict(), metadata(cfg))
    x = torch.tensor(seqs, dtype=torch.float32).t().reshape(T, B, 1)
    y = torch.tensor(targets, dtype=torch.float32).reshape(B, 1)
    opt = torch.optim.SGD(net.parameters(), lr=SGD_LR)
    opt.zero_grad()
    pred, _ = net(x)
    loss = nn.functional.mse_loss(pred[-1], y)
    loss.backward()
    opt.step()
    write_safetensors(out("sgd_step.expected.safetensors"), net.state_dict(),
                      metadata(cfg, {"rnnd.epochs": "1"}))
    log("%-22s written (loss before the step %.6g)" % ("sgd_step", float(loss)))


# --------------------------------------------------------------------------- verify

def verify(log):
    bad = 0
    names = [c[0] for c in forward_cases()] + [r[0] for r in REVERSE]
    for name in names:
        exp = json.load(open(out(name + ".expected.json"), encoding="utf-8"))
        got = run_predict(out(name + ".safetensors"), out(name + ".request.json"))
        for field, kind, err, ok in compare_replies(exp, got):
            bad += not ok
            log("verify %-22s %-28s %s%s" % (name, field, ("%.3g" % err) if kind == "rel" else err,
                                             "" if ok else "   FAIL"))
    with tempfile.TemporaryDirectory() as d:
        res_path = os.path.join(d, "sgd_step.safetensors")
        p = subprocess.run([RNND, "train", "--job", out("sgd_step.job.json"), "--init",
                            out("sgd_step.init.safetensors"), "--out", res_path, "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise SystemExit("rnnd train sgd_step: %s" % p.stderr.strip())
        log("verify sgd_step: rnnd loss %s" % json.loads(p.stdout)["final_loss"])
        _, init = read_safetensors(out("sgd_step.init.safetensors"))
        _, exp = read_safetensors(out("sgd_step.expected.safetensors"))
        _, got = read_safetensors(res_path)
        for name, err, uerr, ok in compare_tensors(exp, got, init):
            bad += not ok
            log("verify sgd_step %-16s weights %.3g  update %.3g%s" % (name, err, uerr,
                                                                     "" if ok else "   FAIL"))
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--retrain", action="store_true", help="retrain the rnnd_trained* models")
    ap.add_argument("--verify", action="store_true", help="compare every case with build/rnnd")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    log = (lambda s: None) if a.quiet else (lambda s: print(s, flush=True))
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    gen_forward(log)
    gen_reverse(log, a.retrain)
    gen_sgd_step(log)
    if a.verify:
        bad = verify(log)
        if bad:
            raise SystemExit("%d comparison(s) failed" % bad)
        log("all comparisons within %g" % TOL)


if __name__ == "__main__":
    main()
