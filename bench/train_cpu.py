# bench/train_cpu.py — the PyTorch half of bench/train_cpu.lua: one model,
# one epoch of Fashion-MNIST (in memory as uint8, each batch made float), Adam
# 1e-3, batch 128, 2 threads (TORCH_THREADS overrides).
#   /usr/bin/python3 bench/train_cpu.py MODEL [max_steps] [seed]
# prints: samples_per_s peak_rss_mb test_accuracy
import gzip, resource, sys, time
import numpy as np
import torch
import torch.nn.functional as F
from models import MODELS

torch.set_num_threads(int(__import__("os").environ.get("TORCH_THREADS", "2")))
DATA = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split):
    x = torch.from_numpy(idx(f"{DATA}/{split}-images-idx3-ubyte.gz").copy()).unsqueeze(1)  # uint8, as stored
    y = torch.from_numpy(idx(f"{DATA}/{split}-labels-idx1-ubyte.gz").copy()).long()
    return x, y


def main():
    name = sys.argv[1]
    max_steps = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    torch.manual_seed(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    if name not in MODELS:
        raise SystemExit(f"unknown model {name}")
    m = MODELS[name]()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    perm = torch.randperm(len(xtr))
    seen, t0, step = 0, time.perf_counter(), 0
    for i in range(0, len(xtr), 128):
        idxs = perm[i:i + 128]
        loss = F.cross_entropy(m(xtr[idxs].float().div_(255)), ytr[idxs])
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(idxs)
        step += 1
        if max_steps and step >= max_steps:
            break
    rate = seen / (time.perf_counter() - t0)
    m.eval()
    with torch.no_grad():
        correct = sum((m(xte[i:i + 1000].float().div_(255)).argmax(1) == yte[i:i + 1000]).sum().item() for i in range(0, len(xte), 1000))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{rate:.1f} {peak:.1f} {correct / len(xte):.4f}")


main()
