-- lua/fastc/ext_idx.lua — fc.read_idx(path): an IDX file (MNIST's format),
-- gzipped or plain, as a tensor of the shape its header gives.
return function(fc, Tensor, H)
  local C = H.C
  function fc.read_idx(path)
    if type(path) ~= 'string' then H.raise('read_idx: path must be a string') end
    return H.wrap(C.fc_read_idx(path))
  end
end
