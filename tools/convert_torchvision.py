#!/usr/bin/python3
"""Write a torchvision model's weights as safetensors with fastc's names.

    python3 tools/convert_torchvision.py ARCH OUT.safetensors [--weights DEFAULT | --seed N] [--num-classes N]

ARCH is a torchvision.models name (resnet18, resnet34, resnet50, mobilenet_v2).
--weights loads torchvision's pretrained weights (their download cache);
--seed N makes a seeded random model instead. fastc counts Sequential
positions from 1, so every all-digit name segment gains one
(layer1.0.conv1.weight -> layer1.1.conv1.weight); the file then loads with
fc.vision.models.load_weights(model, path) or vision_learner{pretrained = path}.
"""
import argparse, json, struct, torch, torchvision

DTYPES = {torch.float32: 'F32', torch.float64: 'F64', torch.int64: 'I64', torch.float16: 'F16'}

def fastc_name(key):
    return '.'.join(str(int(s) + 1) if s.isdigit() else s for s in key.split('.'))

def write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {'__metadata__': metadata or {}}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {'dtype': DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    head += b' ' * (-len(head) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(head)) + head + b''.join(blobs))

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('arch'); p.add_argument('out')
    p.add_argument('--weights'); p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-classes', type=int, default=1000)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    kw = {'weights': a.weights} if a.weights else {'num_classes': a.num_classes}
    model = getattr(torchvision.models, a.arch)(**kw)
    write_safetensors(a.out, {fastc_name(k): v for k, v in model.state_dict().items()}, {'arch': a.arch})
    print(f'{a.out}: {a.arch} ({len(model.state_dict())} tensors, fastc names)')
