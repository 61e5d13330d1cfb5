#!/usr/bin/python3
"""bench/vision_fmnist.py - the PyTorch side of bench/vision_fmnist.lua: the
same PNG folder, fastai's xresnet18 (written out here), the Lua side's
--aug light (flips and zooms up to 1.1), flip (flips only) or none, label
smoothing, AdamW (fastai's Adam defaults: 0.9/0.99, eps 1e-5,
wd 0.01) and a one-cycle schedule (pct_start 0.25, div 25, final div 1e5,
momentum 0.95-0.85-0.95). Prints accuracy and seconds per epoch.

    python3 bench/vision_fmnist.py DIR [epochs=5] [size=28] [bs=128] [lr=1e-2] [aug=light] [label_smoothing=0]

Threads: torch.set_num_threads(FASTC_NUM_THREADS) when that is set, so both
sides can be run on the same share of the machine.
"""
import os
import sys, time, torch, torch.nn as nn, torchvision.transforms as T
from torchvision.datasets import ImageFolder

def conv_layer(ni, nf, ks=3, stride=1, act=True, zero_bn=False):
    bn = nn.BatchNorm2d(nf)
    nn.init.constant_(bn.weight, 0. if zero_bn else 1.)
    layers = [nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=False), bn]
    return nn.Sequential(*(layers + [nn.ReLU(inplace=True)] if act else layers))

class ResBlock(nn.Module):
    def __init__(self, ni, nf, stride):
        super().__init__()
        self.convpath = nn.Sequential(conv_layer(ni, nf, stride=stride), conv_layer(nf, nf, act=False, zero_bn=True))
        idpath = []
        if ni != nf: idpath.append(conv_layer(ni, nf, 1, act=False))
        if stride != 1: idpath.insert(0, nn.AvgPool2d(2, ceil_mode=True))
        self.idpath = nn.Sequential(*idpath)
    def forward(self, x): return torch.relu(self.convpath(x) + self.idpath(x))

def xresnet18(c_in=1, n_out=10):
    szs, layers = [c_in, 32, 32, 64], []
    layers += [conv_layer(szs[i], szs[i + 1], stride=2 if i == 0 else 1) for i in range(3)]
    layers.append(nn.MaxPool2d(3, 2, 1))
    ni = 64
    for i, nf in enumerate([64, 128, 256, 512]):
        layers.append(nn.Sequential(ResBlock(ni, nf, 1 if i == 0 else 2), ResBlock(nf, nf, 1)))
        ni = nf
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, n_out)]
    m = nn.Sequential(*layers)
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)): nn.init.kaiming_normal_(mod.weight)
        if getattr(mod, 'bias', None) is not None: nn.init.zeros_(mod.bias)
    return m

def main():
    root = sys.argv[1]
    defaults = ['5', '28', '128', '1e-2', 'light', '0']
    args = sys.argv[2:] + defaults[len(sys.argv) - 2:]
    epochs, size, bs, lr, aug_name, smoothing = [t(v) for t, v in zip((int, int, int, float, str, float), args)]
    if os.environ.get('FASTC_NUM_THREADS'): torch.set_num_threads(int(os.environ['FASTC_NUM_THREADS']))
    augs = {'light': [T.RandomHorizontalFlip(), T.RandomAffine(0, scale=(1.0, 1.1))],
            'flip': [T.RandomHorizontalFlip()], 'none': []}[aug_name]
    norm = T.Compose([T.Grayscale(), T.Resize(size), T.ToTensor()])
    aug = T.Compose([T.Grayscale(), T.Resize(size)] + augs + [T.ToTensor()])
    train = torch.utils.data.DataLoader(ImageFolder(root + '/train', aug), bs, shuffle=True, drop_last=True, num_workers=2)
    valid = torch.utils.data.DataLoader(ImageFolder(root + '/valid', norm), bs * 2, num_workers=2)
    model = xresnet18()
    opt = torch.optim.AdamW(model.parameters(), lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * len(train), pct_start=0.25,
        div_factor=25, final_div_factor=1e5, base_momentum=0.85, max_momentum=0.95)
    loss_fn, times = nn.CrossEntropyLoss(label_smoothing=smoothing), []
    for epoch in range(epochs):
        t0 = time.time()
        model.train()
        for x, y in train:
            loss = loss_fn(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        model.eval(); correct = n = 0
        with torch.no_grad():
            for x, y in valid:
                correct += (model(x).argmax(1) == y).sum().item(); n += len(y)
        times.append(time.time() - t0)
        print(f'epoch {epoch}: accuracy {correct / n:.4f} ({times[-1]:.1f} s)', flush=True)
    print(f'RESULT pytorch xresnet18 {size}px aug={aug_name} ls={smoothing:g} bs={bs} lr={lr:g}: accuracy {correct / n:.4f}, {sum(times) / len(times):.1f} s/epoch, {epochs} epochs')

if __name__ == '__main__': main()
