# bench/xresnet_step.py — the PyTorch half of bench/xresnet_step.lua: one
# training step (forward, cross-entropy, backward, Adam) of fastai's
# xresnet18 (as written out in bench/vision_fmnist.py) on 1x28x28 inputs.
# Prints "step_seconds S".   python3 bench/xresnet_step.py [bs=128] [threads=2] [size=28]
import importlib.util, os, sys, time
import torch

bs = int(sys.argv[1]) if len(sys.argv) > 1 else 128
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
size = int(sys.argv[3]) if len(sys.argv) > 3 else 28
spec = importlib.util.spec_from_file_location('vf', os.path.join(os.path.dirname(__file__), 'vision_fmnist.py'))
vf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vf)
torch.manual_seed(0)
model = vf.xresnet18()
opt = torch.optim.Adam(model.parameters(), 1e-3)
x, y = torch.randn(bs, 1, size, size), torch.arange(bs) % 10


def step():
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


for _ in range(3):
    step()
times = []
for _ in range(10):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
times.sort()
print('step_seconds', times[len(times) // 2])
