#!/usr/bin/python3
"""Flask + PyTorch reference server for bench/bench_http.sh.

Serves the same POST /predict as `rnnd serve` for one many_to_one LSTM
regression model read from an rnnd .safetensors file (PyTorch state_dict
names), so the two can be load-tested with the same request:

    request:  {"model": "sine", "sequence": [x1, x2, ..., xT]}
    reply:    {"model": "sine", "version": 1, "prediction": <number>}

The module is nn.LSTM(input, hidden) (batch_first=False) + nn.Linear(hidden,
output); the prediction is head(output[-1]) for the sequence shaped [T, 1, 1],
under torch.inference_mode(), with torch.set_num_threads(1).

Server: Werkzeug's development server -- the same one `app.run()` / `flask run`
uses -- built with werkzeug.serving.make_server so that port 0 can be used and
the chosen port logged. By default it is threaded (threaded=True, the default
of `app.run()` in Flask 2.2: one thread per connection, HTTP/1.1 keep-alive);
`--single-thread` gives threaded=False (one request at a time, HTTP/1.0, one
connection per request). Werkzeug's per-request access log is switched off
(rnnd does not log every request either). Binds 127.0.0.1 only.

Usage:
    /usr/bin/python3 bench/flask_server.py PORT --model FILE.safetensors
    /usr/bin/python3 bench/flask_server.py PORT --model-dir DIR [--name sine]

When listening it writes "listening on http://127.0.0.1:PORT" to stderr.
"""

import argparse
import json
import logging
import os
import struct
import sys

# One thread for the BLAS/OpenMP pools too; must be set before torch loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

HOST = "127.0.0.1"


def read_safetensors(path):
    """Return ({name: float32 tensor}, metadata dict) from a .safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (hlen,) = struct.unpack("<Q", raw[:8])
    if 8 + hlen > len(raw):
        raise ValueError(f"{path}: header length {hlen} runs past the end of the file")
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    data = raw[8 + hlen:]
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        if info.get("dtype") != "F32":
            raise ValueError(f"{path}: {name}: dtype {info.get('dtype')}, only F32 is supported")
        shape = [int(s) for s in info["shape"]]
        begin, end = (int(x) for x in info["data_offsets"])
        count = 1
        for s in shape:
            count *= s
        if end - begin != 4 * count or end > len(data):
            raise ValueError(f"{path}: {name}: data_offsets {begin},{end} do not fit shape {shape}")
        values = struct.unpack(f"<{count}f", data[begin:end])
        tensors[name] = torch.tensor(values, dtype=torch.float32).reshape(shape)
    return tensors, meta


class Model(nn.Module):
    def __init__(self, input_size, hidden, output_size):
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden, num_layers=1, batch_first=False)
        self.head = nn.Linear(hidden, output_size)

    def forward(self, x):  # x: [T, B, input]
        out, _ = self.rnn(x)
        return self.head(out[-1])  # [B, output]


def load_model(path):
    tensors, meta = read_safetensors(path)
    cfg = json.loads(meta.get("rnnd.config", "{}"))
    if cfg.get("cell", "lstm") != "lstm" or cfg.get("mode", "many_to_one") != "many_to_one" \
            or int(cfg.get("layers", 1)) != 1 or int(cfg.get("embedding", 0)) != 0:
        raise ValueError(f"{path}: only a 1-layer many_to_one LSTM without embedding is supported")
    w_ih = tensors["rnn.weight_ih_l0"]
    hidden = w_ih.shape[0] // 4
    input_size = w_ih.shape[1]
    output_size = tensors["head.weight"].shape[0]
    model = Model(input_size, hidden, output_size)
    # strict=True: every name must match the PyTorch module exactly.
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, input_size, output_size


def create_app(name, model, input_size, output_size):
    app = Flask(__name__)

    def error(status, message):
        resp = jsonify({"error": message})
        resp.status_code = status
        return resp

    @app.post("/predict")
    def predict():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return error(400, "body must be a JSON object")
        if body.get("model") != name:
            return error(404, f"no model {body.get('model')!r}")
        seq = body.get("sequence")
        if not isinstance(seq, list) or not seq:
            return error(400, "sequence must be a non-empty array")
        try:
            x = torch.tensor(seq, dtype=torch.float32)
        except (TypeError, ValueError):
            return error(400, "sequence must hold numbers")
        x = x.reshape(len(seq), 1, input_size)  # [T, 1, input]
        with torch.inference_mode():
            y = model(x)[0]  # [output]
        pred = float(y[0]) if output_size == 1 else [float(v) for v in y]
        return jsonify({"model": name, "version": 1, "prediction": pred})

    @app.get("/health")
    def health():
        return jsonify({"status": "ok"})

    return app


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("port", type=int, help="TCP port on 127.0.0.1 (0 picks a free one)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="path of the .safetensors file")
    src.add_argument("--model-dir", help="folder holding NAME.safetensors")
    ap.add_argument("--name", default="sine", help="model name (default: sine)")
    ap.add_argument("--single-thread", action="store_true",
                    help="threaded=False: serve one request at a time")
    args = ap.parse_args()

    torch.set_num_threads(1)
    path = args.model or os.path.join(args.model_dir, args.name + ".safetensors")
    if args.model:
        args.name = os.path.basename(path).rsplit(".safetensors", 1)[0]
    model, input_size, output_size = load_model(path)
    app = create_app(args.name, model, input_size, output_size)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log
    server = make_server(HOST, args.port, app, threaded=not args.single_thread)
    print(f"flask_server: model {args.name} loaded from {path}; "
          f"listening on http://{HOST}:{server.port} "
          f"({'threaded' if not args.single_thread else 'single thread'}, "
          f"torch {torch.__version__})", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
