# bench/gpu_train.py — PyTorch eager's half of bench/gpu.sh, the same work as
# bench/gpu_train.lua on the same device:
#   python3 bench/gpu_train.py gemm N DTYPE          -> "TFLOP/s" (torch.mm: cuBLAS)
#   python3 bench/gpu_train.py MODEL BATCH PX STEPS  -> "samples/s"
# float32 with TF32 on for convolutions (PyTorch's default) and matmuls
# (fastc's default), SGD momentum 0.9 (foreach), synthetic data on the device.
import sys, time
import torch
import torch.nn.functional as F
from models import resnet, resnet18

if not torch.cuda.is_available():
    sys.stderr.write("bench/gpu_train.py: torch.cuda is not available\n")
    sys.exit(2)
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
torch.backends.cudnn.benchmark = True  # fastc searches once per shape too
dev = torch.device("cuda")


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
