-- examples/tensor_tour.lua — a short tour of fastc's tensors.
--   build/fastlua examples/tensor_tour.lua
-- Every line also works typed into the REPL (`build/fastlua`), where fc is
-- already loaded; that is why this file uses globals.
fc = require 'fastc'
fc.manual_seed(0)

print('-- creation: nested tables, sizes as varargs or a table, options last')
a = fc.tensor({{1, 2, 3}, {4, 5, 6}})         -- whole numbers give int64, like PyTorch
b = fc.tensor({{0.5, -1}, {2, 0.25}})           -- any fraction gives float32
print(a, b)
print(fc.zeros(2, 3), fc.ones({2}, {dtype = 'float64'}), fc.arange(0, 1, 0.25), fc.eye(3))
print(fc.randn(2, 3), fc.randint(1, 7, {5}))

print('-- arithmetic broadcasts and promotes types like PyTorch')
x = a:float()
print(x * 2 + 1, x / fc.tensor({1, 2, 3}), (x - x:mean()):relu(), x ^ 2)
print(x:gt(3), fc.where(x:gt(3), x, 0), x:exp():log())

print('-- dims and positions count from 1; negative ones from the end')
print(a:size(), a:size(1), a:size(-1), #a, a:dim(), a:numel())
print(a[2], a[2][3], a[{1, -1}], a[{{}, {2, 3}}], a[{2, {1, 3, 2}}])
c = fc.zeros(3, 3)
c[2] = 1                                      -- a row
c[{{}, 3}] = fc.tensor({7, 8, 9})             -- a column
print(c)

print('-- views share memory; reshape copies only when it must')
v = x:view(3, 2)
print(v, x:t(), x:t():is_contiguous(), x:t():reshape(6), x:unsqueeze(1):size())

print('-- reductions: values and 1-based indices')
print(x:sum(), x:sum(1), x:mean(2), x:std(), x:max())
values, indices = x:max(2)
print(values, indices, x:argmax(), x:sort(2, true), x:cumsum(2))

print('-- linear algebra through OpenBLAS')
print(x:matmul(x:t()), fc.tensor({1.0, 2}):dot(fc.tensor({3.0, 4})))

print('-- joining and indexing')
print(fc.cat({a, a}, 1):size(), fc.stack({a, a}):size(), a:index_select(2, {3, 1}))
print(a:gather(2, fc.tensor({{1}, {3}})), a:masked_select(a:gt(3)), fc.one_hot({1, 3}, 3))

print('-- dtypes')
print(x:half(), x:to('bfloat16'), x:long(), x:bool():all())

print('-- autograd')
w = fc.randn(3, 2):requires_grad_()
loss = (x:matmul(w)):tanh():sum()
loss:backward()
print(loss, w.grad)

print('-- errors name the op, the shapes and your line; they never crash')
ok, err = pcall(function() return x + fc.ones(4) end)
print(err)
ok, err = pcall(function() return x:matmul(x) end)
print(err)
ok, err = pcall(function() return x:sum(3) end)
print(err)
