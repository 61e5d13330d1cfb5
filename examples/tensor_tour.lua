-- examples/tensor_tour.lua — a first tour of fastc's tensors.
--
--   build/fastlua examples/tensor_tour.lua
--
-- Every line also works pasted into the REPL (`build/fastlua`, where the
-- package is already the global `fc`): each statement fits on one line and
-- the tour uses globals, so later lines see earlier ones. In the REPL a
-- bare expression prints itself: type `t` instead of `print(t)`.
fc = require 'fastc'
fc.manual_seed(0)                                   -- the same random numbers on every run

-- Creation. A tensor prints its values, then its dtype and size.
t = fc.tensor({{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}})
print(t)                                            -- whole numbers make int64, as in PyTorch
print(fc.tensor({0.5, -1, 2}))                      -- any fraction makes float32
print(fc.zeros(2, 3))                               -- sizes as arguments ...
print(fc.ones({2, 3}, {dtype = 'float64'}))         -- ... or as a table, then options
print(fc.arange(1, 6))                              -- 1..5: arange excludes its end, like PyTorch
print(fc.linspace(0, 1, 5))
print(fc.randn(2, 3))                               -- standard normal samples
print(t:size(), t:size(2), t:dim(), t:numel(), t.dtype)

-- Arithmetic works elementwise and broadcasts like NumPy/PyTorch.
x = t:float()                                       -- a float32 copy
print(x * 2 + 1)                                    -- with numbers
print(x + fc.tensor({10, 20, 30, 40}))              -- [3,4] + [4]: the row repeats down
print(x / x:sum(2, true))                           -- [3,4] / [3,1]: each row over its sum
print(x:gt(6))                                      -- comparisons give bool tensors
print((x - 6):relu():sqrt())                        -- and math functions as methods

-- Indexing counts from 1, as everything in Lua; negative from the end.
print(t[2])                                         -- row 2: a view, no copy
print(t[2][3], t[{2, 3}])                           -- one element, as a Lua number
print(t[{1, {2, 4}}])                               -- row 1, columns 2 to 4 (both included)
print(t[{{}, -1}])                                  -- every row, the last column
print(t[{{2, 3}, {1, 2}}])                          -- a 2x2 block
c = t:clone()                                       -- assigning writes into the tensor:
c[{1, {2, 4}}] = 0                                  -- a slice gets a number ...
c[{{}, 1}] = fc.tensor({-1, -2, -3})                -- ... or a tensor of its shape
print(c)

-- Reductions: the whole tensor, or along a dim (dims count from 1 too).
print(x:sum())                                      -- a 0-dim tensor ...
print(x:sum():item())                               -- ... and its Lua number
print(x:sum(1))                                     -- down the columns
print(x:mean(2))                                    -- along each row
values, indices = x:max(2)                          -- the max of each row and where it is
print(values)
print(indices)                                      -- positions are 1-based
print(x:argmax())                                   -- of the flattened tensor

-- Matrix products go to OpenBLAS.
w = fc.randn(4, 2)
print(x:matmul(w))                                  -- [3,4] x [4,2] -> [3,2]
print(fc.matmul(x, x:t()))                          -- x:t() is a transposed view, not a copy

-- dtypes convert with :to(name) or the short methods.
print(x:half())
print(x:to('int32'))
print((x / 3):long())                               -- float to integer truncates toward zero
print(t.dtype, t:float().dtype, (t + 0.5).dtype)    -- int64 + fraction promotes to float32

-- Errors are Lua errors naming the op, the shapes and your line. Catch
-- them with pcall; nothing crashes and the tensors stay usable.
ok, err = pcall(function() return x + fc.ones(5) end)
print(err)
ok, err = pcall(function() return x:matmul(x) end)
print(err)
ok, err = pcall(function() return t[{4, 1}] end)
print(err)
ok, err = pcall(function() return t:mean() end)
print(err)                                          -- the fix: t:float():mean()
print(t:float():mean())
