# bench/gpu_train.py — PyTorch eager's half of bench/gpu.sh, the same work as
# bench/gpu_train.lua on the same device:
#   python3 bench/gpu_train.py gemm N DTYPE          -> "TFLOP/s" (torch.mm: cuBLAS)
#   python3 bench/gpu_train.py MODEL BATCH PX STEPS  -> "samples/s"
# float32 with TF32 on for convolutions (PyTorch's default) and matmuls
# (fastc's default), SGD momentum 0.9 (foreach), synthetic data on the device.
import sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

if not torch.cuda.is_available():
    sys.stderr.write("bench/gpu_train.py: torch.cuda is not available\n")
    sys.exit(2)
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
torch.backends.cudnn.benchmark = True  # fastc searches once per shape too
dev = torch.device("cuda")


def conv_bn(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Block(nn.Module):  # bench/models.lua's Block
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


def stages(cin, plan):
    layers = []
    for cout, stride in plan:
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    return layers


def resnet():
    return nn.Sequential(conv_bn(1, 32, 1), *stages(32, [(32, 1), (64, 2), (128, 2)]),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def resnet18(cin=3, classes=1000):
    return nn.Sequential(nn.Conv2d(cin, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.MaxPool2d(3, 2, 1), *stages(64, [(64, 1), (128, 2), (256, 2), (512, 2)]),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))


def gemm(n, dtype):
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    a, b = torch.randn(n, n, device=dev, dtype=dt), torch.randn(n, n, device=dev, dtype=dt)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    iters, t0 = 20, time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * iters / (time.perf_counter() - t0) / 1e12


def train(name, batch, px, steps):
    torch.manual_seed(0)
    if name == "resnet":
        model, classes, x = resnet(), 10, torch.randn(batch, 1, 28, 28, device=dev)
    else:
        model, classes, x = resnet18(3, 1000), 1000, torch.randn(batch, 3, px, px, device=dev)
    model.to(dev)
    y = torch.randint(0, classes, (batch,), device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


if sys.argv[1] == "gemm":
    print("%.2f" % gemm(int(sys.argv[2]), sys.argv[3]))
else:
    print("%.1f" % train(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
