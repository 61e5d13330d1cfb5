# bench/loader.py — PyTorch's side of bench/loader.lua: ImageFolder +
# DataLoader with RandomResizedCrop(128), flip, ToTensor, Normalize, bs 64,
# for the given worker counts; prints "workers_N images_per_s" lines (median
# of REPS epochs after one warm-up pass) and "pil_decode images_per_s".
import sys, time, statistics
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

def epoch(dl):
    n, t0 = 0, time.perf_counter()
    for xb, yb in dl:
        n += xb.shape[0]
    return n / (time.perf_counter() - t0)

for w in workers:
    dl = DataLoader(ds, batch_size=64, shuffle=True, num_workers=w, persistent_workers=w > 0)
    epoch(dl)  # warm-up: page cache, worker start
    print('workers_%d %.1f' % (w, statistics.median(epoch(dl) for _ in range(reps))), flush=True)

paths = [p for p, _ in ds.samples[:1000]]
t0 = time.perf_counter()
for p in paths:
    Image.open(p).convert('RGB').load()
print('pil_decode %.1f' % (len(paths) / (time.perf_counter() - t0)))
