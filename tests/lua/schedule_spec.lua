-- tests/lua/schedule_spec.lua — annealers, combined schedules, fit
-- policies' lr/mom curves and lr_find's suggestion functions, against
-- values worked by hand or with fastai's formulas in Python.
local fc = require 'fastc'

local function close(a, b, tol) return math.abs(a - b) <= (tol or 1e-9) * (1 + math.abs(b)) end
local function assert_close(expected, got, tol)
  assert(close(got, expected, tol), string.format('expected %.17g, got %.17g', expected, got))
end

describe('annealers', function()
  it('SchedLin, SchedCos, SchedNo, SchedExp, SchedPoly at known points', function()
    assert_close(0.5, fc.SchedLin(0, 2)(0.25))
    assert_close(2, fc.SchedLin(0, 2)(1))
    assert_close(0.29289321881345254, fc.SchedCos(0, 2)(0.25)) -- 1 + cos(3pi/4)
    assert_close(1, fc.SchedCos(0, 2)(0.5))
    assert_close(0, fc.SchedNo(0, 2)(0.7))
    assert_close(10, fc.SchedExp(1, 100)(0.5))
    assert_close(100, fc.SchedExp(1, 100)(1))
    assert_close(0.5, fc.SchedPoly(0, 2, 2)(0.5))
    assert_close(1.75, fc.SchedPoly(2, 1, 0.5)(0.0625))
  end)

  it('runs element by element over per-group lists', function()
    local v = fc.SchedLin({ 0, 10 }, { 1, 20 })(0.5)
    assert.are.same({ 0.5, 15 }, v)
    local c = fc.SchedCos({ 1, 2 }, 0)(1)
    assert_close(0, c[1]); assert_close(0, c[2])
  end)

  it('combine_scheds picks the schedule of each stretch', function()
    local f = fc.combine_scheds({ 0.3, 0.7 }, { fc.SchedLin(0, 1), fc.SchedCos(1, 0) })
    assert_close(0, f(0))
    assert_close(0.5, f(0.15))
    assert_close(1, f(0.3))
    assert_close(0.5, f(0.65))
    assert_close(0, f(1))
  end)

  it('combined_cos warms up then anneals', function()
    local f = fc.combined_cos(0.25, 1, 10, 0.001)
    assert_close(1, f(0))
    assert_close(5.5, f(0.125))
    assert_close(10, f(0.25))
    assert_close(0.001, f(1))
  end)

  it('rejects pcts that do not add up', function()
    assert.has_error(function() fc.combine_scheds({ 0.3, 0.3 }, { fc.SchedNo(1, 1), fc.SchedNo(1, 1) }) end)
    assert.has_error(function() fc.combine_scheds({ 1.2, -0.2 }, { fc.SchedNo(1, 1), fc.SchedNo(1, 1) }) end)
  end)
end)

-- Learner with 10 training batches per epoch.
local function learner()
  fc.manual_seed(1)
  local learn = fc.testing.synth_learner({ lr = 1e-2 })
  learn.logger = fc.train_util.noop
  return learn
end

describe('fit policies', function()
  it('fit_one_cycle: lr and momentum follow the combined cosines', function()
    local learn = learner()
    learn:fit_one_cycle(2, 1e-2)
    local lr, mom = learn.recorder.hps.lr, learn.recorder.hps.mom
    assert.are.equal(20, #lr)
    -- pct = k/20; values from fastai's formulas in Python
    local want = { [0] = { 0.0004, 0.95 }, [1] = { 0.0013167184270002528, 0.9404508497187474 },
      [5] = { 0.01, 0.85 }, [10] = { 0.007500025000000001, 0.875 },
      [19] = { 0.00010936090371100812, 0.9489073800366903 } }
    for k, w in pairs(want) do
      assert_close(w[1], lr[k + 1], 1e-12)
      assert_close(w[2], mom[k + 1], 1e-12)
    end
    assert.are.same(lr, learn.recorder.lrs)
  end)

  it('fit_sgdr restarts the cosine at each cycle', function()
    local learn = learner()
    learn:fit_sgdr(2, 1, 1e-2) -- 3 epochs: cycles of 1 and 2
    local lr = learn.recorder.hps.lr
    assert.are.equal(30, #lr)
    for k, w in pairs({ [0] = 0.01, [5] = 0.005, [10] = 0.01, [15] = 0.008535533905932738, [29] = 6.155829702431115e-05 }) do
      assert_close(w, lr[k + 1], 1e-12)
    end
  end)

  it('fit_flat_cos stays flat then anneals', function()
    local learn = learner()
    learn:fit_flat_cos(2, 1e-2)
    local lr = learn.recorder.hps.lr
    assert_close(0.01, lr[1]); assert_close(0.01, lr[16])
    assert_close(0.000955005478974983, lr[20], 1e-12)
  end)

  it('fit_one_cycle with discriminative lrs schedules every group', function()
    fc.manual_seed(2)
    local learn = fc.testing.synth_learner({ lr = 1e-2, splitter = function(m) return { { m.a }, { m.b } } end })
    learn.logger = fc.train_util.noop
    learn:fit_one_cycle(1, fc.slice(1e-3, 1e-1))
    -- hps record the last group; after fit the first group ends at its own lr/1e5-ish value
    assert_close(0.1 / 25, learn.recorder.hps.lr[1], 1e-12)
    local h = learn.opt.hypers
    assert.is_true(h[1].lr < h[2].lr)
    assert_close(100, h[2].lr / h[1].lr, 1e-9)
  end)
end)

describe('lr_find suggestions', function()
  local lrs, losses = {}, { 2.0, 1.98, 1.97, 1.9, 1.8, 1.6, 1.3, 1.0, 0.8, 0.7, 0.65, 0.6, 0.58, 0.57, 0.6, 0.7,
    0.9, 1.2, 1.6, 2.2, 3.0, 4.0, 5.5, 7.0, 9.0 }
  for i = 0, 24 do lrs[i + 1] = 1e-5 * 10 ^ (i / 5) end
  local S = fc.SuggestionMethod

  it('match fastai on the same curve', function()
    local v, pt = S.valley(lrs, losses)
    assert_close(1e-4, v, 1e-12); assert_close(1.6, pt[2])
    local m, mpt = S.minimum(lrs, losses)
    assert_close(0.00039810717055349735, m, 1e-12); assert_close(0.003981071705534973, mpt[1], 1e-12)
    assert_close(0.57, mpt[2])
    local s = S.steep(lrs, losses)
    assert_close(1e-4, s, 1e-12)
    local sl = S.slide(lrs, losses)
    assert_close(1e-5, sl, 1e-12)
    local sl2, spt = S.slide(lrs, losses, nil, { lr_diff = 5, thresh = 0.3 })
    assert_close(0.00251188643150958, sl2, 1e-12); assert_close(0.58, spt[2], 1e-9)
    local sl3, spt3 = S.slide(lrs, losses, nil, { lr_diff = 5, thresh = 0.3, adjust_value = 2 })
    assert_close(0.00502377286301916, sl3, 1e-12); assert_close(0.5851544993495972, spt3[2], 1e-9)
  end)
end)
