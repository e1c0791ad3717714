"""PyTorch peer runs on Fashion-MNIST, for comparison with NormLab's benches.

Run with Debian's PyTorch (apt-get install python3-torch libopenblas0-pthread
dataset-fashion-mnist):  /usr/bin/python3 bench/peers/torch_fashion.py curves
Prints one JSON object per line. Single thread unless --threads says otherwise, the
OpenBLAS pool under torch included (its size is fixed when the library loads).

  curves      MLP 784-256-256-10, SGD lr 0.01 (no momentum), batch 64, 10 epochs:
              test accuracy per epoch for batch norm none / before / after
  throughput  samples/s of one training epoch, SGD momentum 0.9, batch 32/128/512
  infer       µs per eval-mode forward call (model.eval(), torch.no_grad()) of the
              MLP 784-256-256-10 with batch norm before the activation, after one
              training epoch, at batch 1 and 64 (--infer-batches); median of
              --samples samples of about --ms ms each, after a warm-up
"""
import argparse
import ctypes
import gzip
import json
import os
import struct
import sys
import time


def _threads_arg():
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return "1"


# OpenBLAS (loaded by numpy and torch) sizes its own thread pool when it loads, from these
# variables or else the core count; torch.set_num_threads does not resize it. Without this the
# "single-thread" peer runs its matrix multiplies on every core.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads_arg()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def blas_threads():
    """Threads of the OpenBLAS that torch loaded (None when it is another BLAS)."""
    try:
        return ctypes.CDLL("libopenblas.so.0").openblas_get_num_threads()
    except (OSError, AttributeError):
        return None

DATA = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")


def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load():
    xtr = torch.tensor(read_idx("train-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32) / 255
    ytr = torch.tensor(read_idx("train-labels-idx1-ubyte.gz"), dtype=torch.long)
    xte = torch.tensor(read_idx("t10k-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32) / 255
    yte = torch.tensor(read_idx("t10k-labels-idx1-ubyte.gz"), dtype=torch.long)
    return xtr, ytr, xte, yte


def mlp(mode, hidden=(256, 256)):
    layers, width = [], 784
    for units in hidden:
        if mode == "before":
            layers += [nn.Linear(width, units, bias=False), nn.BatchNorm1d(units, momentum=0.01, eps=1e-3), nn.ReLU()]
        elif mode == "after":
            layers += [nn.Linear(width, units), nn.ReLU(), nn.BatchNorm1d(units, momentum=0.01, eps=1e-3)]
        else:
            layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train_epoch(model, opt, x, y, batch, gen):
    model.train()
    perm = torch.randperm(len(x), generator=gen)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        idx = perm[i:i + batch]
        if len(idx) < 2:
            continue
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def curves(args):
    xtr, ytr, xte, yte = load()
    for mode in ("none", "before", "after"):
        torch.manual_seed(args.seed)
        gen = torch.Generator().manual_seed(args.seed)
        model = mlp(mode)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for epoch in range(1, args.epochs + 1):
            seconds = train_epoch(model, opt, xtr, ytr, 64, gen)
            print(json.dumps({"bench": "bn-curves", "peer": "pytorch", "mode": mode, "epoch": epoch,
                              "testAccuracy": round(accuracy(model, xte, yte), 4), "seconds": round(seconds, 3)}), flush=True)


def throughput(args):
    xtr, ytr, _, _ = load()
    for batch in (int(b) for b in args.batches.split(",")):
        for mode in args.modes.split(","):
            torch.manual_seed(args.seed)
            gen = torch.Generator().manual_seed(args.seed)
            model = mlp(mode)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            train_epoch(model, opt, xtr[:10000], ytr[:10000], batch, gen)  # warm-up
            rates = sorted(len(xtr) / train_epoch(model, opt, xtr, ytr, batch, gen) for _ in range(args.repeats))
            print(json.dumps({"bench": "train-throughput", "peer": "pytorch", "mode": mode, "batch": batch,
                              "samplesPerSec": round(rates[len(rates) // 2]), "runs": [round(r) for r in rates],
                              "threads": torch.get_num_threads(), "blasThreads": blas_threads()}), flush=True)


def infer(args):
    xtr, ytr, xte, _ = load()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = mlp("before")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    train_epoch(model, opt, xtr, ytr, 128, gen)
    model.eval()
    for batch in (int(b) for b in args.infer_batches.split(",")):
        views = [xte[i * batch:(i + 1) * batch] for i in range(64)]
        state = {"i": 0}

        def call():
            model(views[state["i"]])
            state["i"] = (state["i"] + 1) % len(views)

        with torch.no_grad():
            for _ in range(2000):
                call()
            reps = 16
            while True:
                start = time.perf_counter()
                for _ in range(reps):
                    call()
                ms = (time.perf_counter() - start) * 1000
                if ms >= args.ms / 4:
                    reps = max(1, round(reps * args.ms / ms))
                    break
                reps *= 4
            us = []
            for _ in range(args.samples):
                start = time.perf_counter()
                for _ in range(reps):
                    call()
                us.append((time.perf_counter() - start) * 1e6 / reps)
        us.sort()
        med = us[len(us) // 2]
        print(json.dumps({"bench": "infer", "peer": "pytorch", "model": "784-256-256-10 bn-before", "batch": batch,
                          "usPerCall": round(med, 2), "usPerRow": round(med / batch, 3),
                          "p10us": round(us[len(us) // 10], 2), "p90us": round(us[len(us) * 9 // 10], 2),
                          "threads": torch.get_num_threads(), "blasThreads": blas_threads(), "torch": torch.__version__}), flush=True)


def cnn(bn):
    def block(cin, cout):
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=not bn)]
        if bn:
            layers.append(nn.BatchNorm2d(cout, momentum=0.01, eps=1e-3))
        return layers + [nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*block(1, 32), *block(32, 64), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def cnn_throughput(args):
    xtr, ytr, _, _ = load()
    x, y = xtr[:args.rows].reshape(-1, 1, 28, 28), ytr[:args.rows]
    for bn in (True, False):
        torch.manual_seed(args.seed)
        gen = torch.Generator().manual_seed(args.seed)
        model = cnn(bn)
        opt = torch.optim.Adam(model.parameters(), lr=0.001)
        train_epoch(model, opt, x[:1024], y[:1024], 128, gen)  # warm-up
        rates = sorted(len(x) / train_epoch(model, opt, x, y, 128, gen) for _ in range(args.repeats))
        print(json.dumps({"bench": "cnn-throughput", "peer": "pytorch", "batchNorm": bn, "batch": 128, "rows": args.rows,
                          "samplesPerSec": round(rates[len(rates) // 2]), "runs": [round(r) for r in rates],
                          "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["curves", "throughput", "infer", "cnn"])
    parser.add_argument("--rows", type=int, default=6000, help="cnn: training rows per epoch")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", default="32,128,512", help="throughput: batch sizes")
    parser.add_argument("--modes", default="none,before,after", help="throughput: batch-norm modes")
    parser.add_argument("--infer-batches", default="1,64")
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--ms", type=float, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"curves": curves, "throughput": throughput, "infer": infer, "cnn": cnn_throughput}[args.what](args)
