-- lua/fastc/schedule.lua — fastai's annealing schedules as callables of
-- pct (0 at the start of training, 1 at the end):
--
--   local f = fc.SchedCos(1e-3, 1e-5); f(0.5)
--   fc.combined_cos(0.25, 1e-4, 1e-3, 1e-8)   warm-up then anneal
--   fc.combine_scheds({0.3, 0.7}, {fc.SchedLin(0, 1), fc.SchedCos(1, 0)})
--
-- start and stop may also be per-group lists; the schedule then returns a
-- list (what fit_one_cycle hands to opt:set_hyper for discriminative lrs).
return function(fc)
  local cos, pi, fmt = math.cos, math.pi, string.format

  local function sched_lin(start, stop, pos) return start + pos * (stop - start) end
  local function sched_cos(start, stop, pos) return start + (1 + cos(pi * (1 - pos))) * (stop - start) / 2 end
  local function sched_no(start) return start end
  local function sched_exp(start, stop, pos) return start * (stop / start) ^ pos end
  fc.sched_lin, fc.sched_cos, fc.sched_no, fc.sched_exp = sched_lin, sched_cos, sched_no, sched_exp

  -- Applies f to numbers, or element by element to equal-length lists.
  local function elementwise(f, start, stop, pos)
    if type(start) ~= 'table' and type(stop) ~= 'table' then return f(start, stop, pos) end
    local n = type(start) == 'table' and #start or #stop
    local out = {}
    for i = 1, n do
      local s = type(start) == 'table' and start[i] or start
      local e = type(stop) == 'table' and stop[i] or stop
      out[i] = f(s, e, pos)
    end
    return out
  end

  -- An annealer: a callable table that keeps its ends for inspection.
  local Annealer = {}
  Annealer.__index = Annealer
  Annealer.__call = function(self, pos) return elementwise(self.f, self.start, self.stop, pos) end
  Annealer.__tostring = function(self) return fmt('%s(%s, %s)', self.kind, tostring(self.start), tostring(self.stop)) end

  local function annealer(kind, f)
    return function(start, stop)
      return setmetatable({ kind = kind, f = f, start = start, stop = stop }, Annealer)
    end
  end
  fc.SchedLin = annealer('SchedLin', sched_lin)
  fc.SchedCos = annealer('SchedCos', sched_cos)
  fc.SchedNo = annealer('SchedNo', sched_no)
  fc.SchedExp = annealer('SchedExp', sched_exp)

  function fc.SchedPoly(start, stop, power)
    return function(pos)
      return elementwise(function(s, e, p) return s + (e - s) * p ^ power end, start, stop, pos)
    end
  end

  -- scheds[i] runs over the i-th slice of training, of length pcts[i].
  function fc.combine_scheds(pcts, scheds)
    if #pcts ~= #scheds then error(fmt('combine_scheds: %d pcts for %d schedules', #pcts, #scheds), 2) end
    local bounds, total = { 0 }, 0
    for i, p in ipairs(pcts) do
      if p < 0 then error(fmt('combine_scheds: pcts[%d] = %g is negative', i, p), 2) end
      total = total + p
      bounds[i + 1] = total
    end
    if math.abs(total - 1) > 1e-6 then error(fmt('combine_scheds: pcts must sum to 1, got %g', total), 2) end
    local last = #scheds
    return function(pos)
      local idx = 1 -- the last schedule whose start is <= pos, at most the last one
      for i = 1, last do if pos >= bounds[i] then idx = i end end
      local actual = (pos - bounds[idx]) / (bounds[idx + 1] - bounds[idx])
      return scheds[idx](actual)
    end
  end

  function fc.combined_cos(pct, start, middle, stop)
    return fc.combine_scheds({ pct, 1 - pct }, { fc.SchedCos(start, middle), fc.SchedCos(middle, stop) })
  end
end
