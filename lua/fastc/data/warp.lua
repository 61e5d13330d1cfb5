-- lua/fastc/data/warp.lua — fc.F.affine_grid and fc.F.grid_sample (C:
-- runtime/ops_warp.c), PyTorch's semantics and defaults; forward only.
--
--   local grid = fc.F.affine_grid(theta, {N, C, H, W}, {align_corners = false})
--   local y = fc.F.grid_sample(x, grid, {mode = 'bilinear'|'nearest',
--     padding_mode = 'zeros'|'border'|'reflection', align_corners = false})
return function(fc, Tensor, H)
  local C, wrap, raise = H.C, H.wrap, H.raise
  local fmt = string.format
  local F = fc.F or {}
  fc.F = F

  local MODES = { bilinear = C.FC_SAMPLE_BILINEAR, nearest = C.FC_SAMPLE_NEAREST }
  local PADS = { zeros = C.FC_PAD_ZEROS, border = C.FC_PAD_BORDER, reflection = C.FC_PAD_REFLECTION }

  -- size: the output's {N, C, H, W} (N and C are checked against theta only
  -- in that N must match) or {H, W}.
  function F.affine_grid(theta, size, o)
    o = o or {}
    if not H.is_tensor(theta) then raise('affine_grid: theta must be a tensor') end
    if type(size) ~= 'table' or (#size ~= 4 and #size ~= 2) then
      raise('affine_grid: size must be {N, C, H, W} or {H, W}')
    end
    local h, w = size[#size - 1], size[#size]
    if #size == 4 and theta:dim() == 3 and size[1] ~= theta:size(1) then
      raise(fmt('affine_grid: size has N=%d but theta has %d matrices', size[1], theta:size(1)))
    end
    return wrap(C.fc_affine_grid(theta.p, h, w, o.align_corners and 1 or 0))
  end

  function F.grid_sample(x, grid, o)
    o = o or {}
    local mode = MODES[o.mode or 'bilinear']
    if not mode then raise(fmt('grid_sample: unknown mode %q (bilinear or nearest)', tostring(o.mode))) end
    local pad = PADS[o.padding_mode or 'zeros']
    if not pad then
      raise(fmt('grid_sample: unknown padding_mode %q (zeros, border or reflection)', tostring(o.padding_mode)))
    end
    if not H.is_tensor(x) or not H.is_tensor(grid) then raise('grid_sample: expects tensors') end
    return wrap(C.fc_grid_sample(x.p, grid.p, mode, pad, o.align_corners and 1 or 0))
  end
end
