# bench/loader.py — PyTorch's side of bench/loader.lua: ImageFolder +
# DataLoader with RandomResizedCrop(128), flip, ToTensor, Normalize, bs 64,
# for the given worker counts; prints "workers_N images_per_s" and
# "cpu_workers_N images_per_cpu_s" lines (median of REPS epochs after one
# warm-up pass; CPU time of this process and of its worker processes) and
# "pil_decode images_per_s" (and per CPU-second).
import os, sys, time, statistics
import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms
from PIL import Image

root, reps = sys.argv[1], int(sys.argv[2])
workers = [int(w) for w in sys.argv[3].split(',')]
tf = transforms.Compose([
    transforms.RandomResizedCrop(128), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
ds = datasets.ImageFolder(root + '/train', tf)
torch.manual_seed(0)
torch.set_num_threads(1)
TICK = os.sysconf('SC_CLK_TCK')

def cpu_seconds(pids):
    """CPU time (user + system) of this process and the given ones."""
    total = time.process_time()
    for pid in pids:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total

def epoch(dl):
    it = iter(dl)
    pids = [w.pid for w in getattr(it, '_workers', [])]
    n, t0, c0 = 0, time.perf_counter(), cpu_seconds(pids)
    for xb, yb in it:
        n += xb.shape[0]
    return n / (time.perf_counter() - t0), n / (cpu_seconds(pids) - c0)

for w in workers:
    dl = DataLoader(ds, batch_size=64, shuffle=True, num_workers=w, persistent_workers=w > 0)
    epoch(dl)  # warm-up: page cache, worker start
    runs = [epoch(dl) for _ in range(reps)]
    print('workers_%d %.1f' % (w, statistics.median(r[0] for r in runs)), flush=True)
    print('cpu_workers_%d %.1f' % (w, statistics.median(r[1] for r in runs)), flush=True)

paths = [p for p, _ in ds.samples[:1000]]
t0, c0 = time.perf_counter(), time.process_time()
for p in paths:
    Image.open(p).convert('RGB').load()
print('pil_decode %.1f' % (len(paths) / (time.perf_counter() - t0)))
print('pil_decode_cpu %.1f' % (len(paths) / (time.process_time() - c0)))
