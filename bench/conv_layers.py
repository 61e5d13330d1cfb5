# bench/conv_layers.py — PyTorch's twin of bench/conv_layers.lua: conv2d
# forward and forward + backward (input, weight, bias gradients) for the same
# layers, batch 128, float32; best of 20 runs in wall-clock and process CPU
# milliseconds. Threads: torch.set_num_threads(FASTC_NUM_THREADS or 2).
#   /usr/bin/python3 bench/conv_layers.py
import os, time
import torch
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get('FASTC_NUM_THREADS', '2')))
layers = [('cnn1', 1, 16, 28, 2), ('cnn2', 16, 32, 14, 2), ('cnn3', 32, 64, 7, 2), ('cnn4', 64, 128, 4, 2),
          ('res32', 32, 32, 28, 1), ('res64s2', 32, 64, 28, 2), ('res64', 64, 64, 14, 1), ('res128', 128, 128, 7, 1)]


def best(fn, reps=20):
    fn()
    wall = cpu = float('inf')
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


torch.manual_seed(0)
total = total_cpu = 0
for name, cin, cout, hw, stride in layers:
    x = torch.randn(128, cin, hw, hw, requires_grad=True)
    w = (torch.randn(cout, cin, 3, 3) * 0.1).requires_grad_()
    b = torch.zeros(cout, requires_grad=True)
    g = torch.randn_like(F.conv2d(x, w, b, stride=stride, padding=1))

    def step():
        F.conv2d(x, w, b, stride=stride, padding=1).backward(g)
        x.grad = w.grad = b.grad = None

    with torch.no_grad():
        fwd, fwd_cpu = best(lambda: F.conv2d(x, w, b, stride=stride, padding=1))
    both, both_cpu = best(step)
    total, total_cpu = total + both, total_cpu + both_cpu
    print('%-8s [128,%d,%d,%d] -> %d  fwd %.3f ms (cpu %.3f)  fwd+bwd %.3f ms (cpu %.3f)' % (
        name, cin, hw, hw, cout, fwd * 1e3, fwd_cpu * 1e3, both * 1e3, both_cpu * 1e3))
print('total fwd+bwd %.3f ms (cpu %.3f)' % (total * 1e3, total_cpu * 1e3))
