"""PyTorch peer runs of recurrent networks on sequential Fashion-MNIST (each image read
as 28 steps of 28 pixels, a row per step), for comparison with bench/rnn.mjs.

Run with Debian's PyTorch (apt-get install python3-torch libopenblas0-pthread
dataset-fashion-mnist):  /usr/bin/python3 bench/peers/torch_rnn.py throughput
Prints one JSON object per line. Single thread unless --threads says otherwise, the
OpenBLAS pool under torch included (its size is fixed when the library loads).

The network: nn.LSTM / nn.GRU / nn.RNN (tanh) with input 28, hidden 128, batch_first,
one layer; the last step's output into nn.Linear(128, 10); cross-entropy; Adam lr 0.001;
pixels scaled to 0..1 (NormLab's `scale` preprocessing of a 0..255 image set).

  throughput  samples/s of one training epoch over the first --rows training images,
              batch --batch, after a warm-up epoch of 1024 rows; --repeats epochs
  curves      test accuracy per epoch over --epochs epochs on the full training set,
              and the first epoch whose test accuracy reaches --target
"""
import argparse
import json
import os
import sys
import time


# torch_fashion sets the OpenBLAS thread count from --threads before it imports torch
# (the pool is sized when the library loads), so it is imported first.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_fashion import blas_threads, load  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class Recurrent(nn.Module):
    def __init__(self, cell, hidden=128, steps_features=28, classes=10):
        super().__init__()
        self.rnn = CELLS[cell](steps_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def sequences(x):
    """[n, 784] pixels as [n, 28 steps, 28 features]: row r of the image is step r."""
    return x.reshape(-1, 28, 28)


def train_epoch(model, opt, x, y, batch, gen):
    model.train()
    perm = torch.randperm(len(x), generator=gen)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        idx = perm[i:i + batch]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def throughput(args):
    xtr, ytr, _, _ = load()
    x, y = sequences(xtr[:args.rows]), ytr[:args.rows]
    for cell in args.cells.split(","):
        torch.manual_seed(args.seed)
        gen = torch.Generator().manual_seed(args.seed)
        model = Recurrent(cell, args.hidden)
        opt = torch.optim.Adam(model.parameters(), lr=0.001)
        train_epoch(model, opt, x[:1024], y[:1024], args.batch, gen)  # warm-up
        rates = sorted(len(x) / train_epoch(model, opt, x, y, args.batch, gen) for _ in range(args.repeats))
        print(json.dumps({"bench": "rnn-throughput", "peer": "pytorch", "cell": cell, "hidden": args.hidden,
                          "batch": args.batch, "rows": len(x), "samplesPerSec": round(rates[len(rates) // 2]),
                          "runs": [round(r) for r in rates], "threads": torch.get_num_threads(),
                          "blasThreads": blas_threads(), "torch": torch.__version__}), flush=True)


def curves(args):
    xtr, ytr, xte, yte = load()
    x, y, xt = sequences(xtr), ytr, sequences(xte)
    for cell in args.cells.split(","):
        torch.manual_seed(args.seed)
        gen = torch.Generator().manual_seed(args.seed)
        model = Recurrent(cell, args.hidden)
        opt = torch.optim.Adam(model.parameters(), lr=0.001)
        reached = None
        for epoch in range(1, args.epochs + 1):
            seconds = train_epoch(model, opt, x, y, args.batch, gen)
            acc = accuracy(model, xt, yte)
            if reached is None and acc >= args.target:
                reached = epoch
            print(json.dumps({"bench": "rnn-curves", "peer": "pytorch", "cell": cell, "hidden": args.hidden,
                              "batch": args.batch, "epoch": epoch, "testAccuracy": round(acc, 4),
                              "firstEpochAtTarget": reached, "target": args.target, "seconds": round(seconds, 1),
                              "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["throughput", "curves"])
    parser.add_argument("--cells", default="lstm,gru,rnn")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rows", type=int, default=6000, help="throughput: training rows per epoch")
    parser.add_argument("--repeats", type=int, default=2, help="throughput: timed epochs")
    parser.add_argument("--epochs", type=int, default=3, help="curves")
    parser.add_argument("--target", type=float, default=0.85, help="curves: test accuracy to reach")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"throughput": throughput, "curves": curves}[args.what](args)
