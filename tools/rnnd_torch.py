"""rnnd model files from PyTorch, with nothing but torch (Debian's python3-torch).

An rnnd model is a safetensors file holding the state_dict of a module with
submodules `embedding` (token input only), `rnn` (nn.RNN, nn.LSTM or nn.GRU,
batch_first=False) and `head` (nn.Linear), all float32, and the architecture
as JSON in __metadata__["rnnd.config"] (docs/model-format.md).

    import sys; sys.path.insert(0, "tools")
    import rnnd_torch

    cfg = rnnd_torch.config("regression", "many_to_one", "lstm", input_size=1, hidden=32)
    net = rnnd_torch.RNNModel(cfg)            # or any module with the same names
    ... train net ...
    rnnd_torch.save(net, "models/mysine.safetensors", cfg)

    state, cfg, meta = rnnd_torch.load("models/sine.safetensors")   # written by rnnd
    net = rnnd_torch.RNNModel(cfg)
    net.load_state_dict(state)                # strict: names and shapes match
"""
import json
import os
import struct
import tempfile

import torch
from torch import nn

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def config(task, mode, cell, input_size, hidden, output_size=None, layers=1,
           activation="tanh", embedding=0, vocab="", labels=None, lowercase=True,
           bidirectional=False, dropout=0.0):
    """The rnnd.config dict. For a language model, input_size and output_size
    are len(vocab); output_size defaults to input_size (regression, lm) or
    len(labels) (classify). vocab is a string of characters, or a list of
    words ("<unk>", "<eos>" first) for a word model ("tokens": "words").
    bidirectional and dropout are nn.RNN's (dropout acts in training only;
    rnnd keeps it in the file as a record)."""
    if output_size is None:
        output_size = len(labels) if labels else input_size
    c = {"task": task, "mode": mode, "cell": cell, "activation": activation,
         "input_size": input_size, "hidden": hidden, "layers": layers,
         "output_size": output_size, "embedding": embedding, "vocab": vocab}
    if isinstance(vocab, (list, tuple)):
        c["vocab"] = list(vocab)
        c["tokens"] = "words"
        c["lowercase"] = bool(lowercase)
    if labels:
        c["labels"] = list(labels)
    if bidirectional:
        c["bidirectional"] = True
    if dropout:
        c["dropout"] = float(dropout)
    return c


def words(text, lowercase=True):
    """rnnd's word tokenizer: runs of letters and digits (any non-ASCII
    character counts as a letter) with apostrophes inside; every other
    character that is not white space on its own."""
    out, i, n = [], 0, len(text)
    isword = lambda ch: ch.isascii() and ch.isalnum() or not ch.isascii()  # noqa: E731
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        j = i + 1
        if isword(ch):
            while j < n and (isword(text[j]) or (text[j] == "'" and j + 1 < n and isword(text[j + 1]))):
                j += 1
        w = text[i:j]
        out.append("".join(c.lower() if c.isascii() else c for c in w) if lowercase else w)
        i = j
    return out


def token_ids(cfg, text):
    """The token ids rnnd reads text as: words ("<unk>" for one the
    vocabulary lacks) or characters (those it lacks left out)."""
    vocab = cfg["vocab"]
    if isinstance(vocab, list):
        index = {w: i for i, w in enumerate(vocab)}
        return [index.get(w, 0) for w in words(text, cfg.get("lowercase", True))]
    return [vocab.index(ch) for ch in text if ch in vocab]


def series(meta):
    """A series model's columns and z-score statistics from the file's
    metadata ("rnnd.series"), or None: {"columns", "target", "normalize",
    "mean", "std"}. Inputs go into the model as (x - mean) / std per column;
    outputs come back as y * std[target] + mean[target]."""
    s = meta.get("rnnd.series")
    return json.loads(s) if s else None


class RNNModel(nn.Module):
    """The module rnnd's files describe: embedding? -> rnn -> head.
    forward(x): x is (T, B, X) floats, or (T, B) token ids when the config has
    a vocabulary: looked up in the embedding, or one-hot without one
    (embedding 0, min-char-rnn's input: rnn.weight_ih_l0 is (G*H, V)).
    Returns the head's output at every step, (T, B, O), and the final state.
    many_to_one models use the last step, y[-1], or for a bidirectional
    model the head over both directions' final states [h_f(T-1), h_r(0)]:
    last(x) gives a many_to_one model's (B, O) output either way.
    A bidirectional model's rnn has PyTorch's *_reverse tensors and its head
    reads 2 hidden features."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = dict(cfg)
        rin = cfg["input_size"]
        if cfg["embedding"] > 0:
            self.embedding = nn.Embedding(cfg["input_size"], cfg["embedding"])
            rin = cfg["embedding"]
        H, L = cfg["hidden"], cfg["layers"]
        D = 2 if cfg.get("bidirectional") else 1
        extra = {"bidirectional": D == 2, "dropout": float(cfg.get("dropout", 0.0))}
        if cfg["cell"] == "rnn":
            if cfg["activation"] not in ("tanh", "relu"):
                raise ValueError("nn.RNN has no %r activation" % cfg["activation"])
            self.rnn = nn.RNN(rin, H, L, nonlinearity=cfg["activation"], **extra)
        elif cfg["cell"] == "lstm":
            self.rnn = nn.LSTM(rin, H, L, **extra)
        elif cfg["cell"] == "gru":
            self.rnn = nn.GRU(rin, H, L, **extra)
        else:
            raise ValueError("cell must be rnn, lstm or gru, not %r" % cfg["cell"])
        self.head = nn.Linear(D * H, cfg["output_size"])

    def forward(self, x, state=None):
        if self.cfg["embedding"] > 0:
            x = self.embedding(x)
        elif self.cfg.get("vocab"):
            x = nn.functional.one_hot(x, self.cfg["input_size"]).float()
        y, state = self.rnn(x, state)
        return self.head(y), state

    def last(self, x):
        """A many_to_one model's output, (B, O): the head over the top
        layer's final state, both directions' for a bidirectional model."""
        y, state = self.forward(x)
        if not self.cfg.get("bidirectional"):
            return y[-1]
        h = state[0] if isinstance(state, tuple) else state   # (L D, B, H)
        return self.head(torch.cat([h[-2], h[-1]], dim=1))


def save(module_or_state, path, cfg, metadata=None):
    """Writes an rnnd model file atomically (temp file, fsync, rename).
    module_or_state: an nn.Module or its state_dict; cfg: as config()."""
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    md = {"rnnd.format": "1", "rnnd.config": json.dumps(cfg, ensure_ascii=False)}
    md.update(metadata or {})
    header, blobs, off = {"__metadata__": md}, [], 0
    for name, t in state.items():
        t = t.detach().to(torch.float32).contiguous().cpu()
        b = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-len(h) % 8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load(path):
    """Reads an rnnd model file: (state_dict of float32 tensors, config dict,
    metadata dict of strings)."""
    import numpy as np
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", buf[:8])
    if 8 + n > len(buf):
        raise ValueError("%s: header length %d runs past the end" % (path, n))
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = buf[8 + n:]
    md = header.pop("__metadata__", {})
    if "rnnd.config" not in md:
        raise ValueError("%s: no rnnd.config in __metadata__" % path)
    state, spans = {}, []
    for name, e in header.items():
        if e["dtype"] != "F32":
            raise ValueError("%s: tensor %s is %s, not F32" % (path, name, e["dtype"]))
        b, en = e["data_offsets"]
        count = 1
        for d in e["shape"]:
            count *= d
        if en - b != 4 * count or en > len(data):
            raise ValueError("%s: tensor %s: data_offsets do not fit its shape" % (path, name))
        a = np.frombuffer(data, dtype="<f4", count=count, offset=b).reshape(e["shape"])
        state[name] = torch.from_numpy(a.astype("float32"))
        spans.append((b, en))
    pos = 0
    for b, en in sorted(spans):
        if b != pos:
            raise ValueError("%s: the tensors do not tile the data (gap or overlap at byte %d)" % (path, pos))
        pos = en
    if pos != len(data):
        raise ValueError("%s: %d bytes after the last tensor" % (path, len(data) - pos))
    return state, json.loads(md["rnnd.config"]), md
