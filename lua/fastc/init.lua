-- fastc: `local fc = require 'fastc'` gives the whole public surface.
local core = require 'fastc.tensor'
local fc, Tensor, H = core.fc, core.Tensor, core.H

-- Each extension adds methods to Tensor and functions to fc.
local extensions = {
  'fastc.ext_math', 'fastc.ext_indexing', 'fastc.print',
  'fastc.ext_reduce', 'fastc.ext_index', 'fastc.ext_linalg', 'fastc.ext_autograd',
  'fastc.ext_io', 'fastc.ext_idx', 'fastc.ext_loss', 'fastc.functional', 'fastc.ext_conv', 'fastc.ext_norm',
  'fastc.cuda',
  'fastc.nn',
  'fastc.amp', -- autocast wraps F/Tensor ops here: after nn (F.linear), before losses capture F's functions
  'fastc.optim', 'fastc.optimizer', 'fastc.metrics', 'fastc.losses', 'fastc.plot',
  -- the training layer (Learner, callbacks, schedules)
  'fastc.schedule', 'fastc.tensor_data', 'fastc.callback.core', 'fastc.registry',
  'fastc.learner', 'fastc.callback.recorder', 'fastc.callback.progress',
  'fastc.callback.schedule', 'fastc.callback.tracker', 'fastc.callback.training', 'fastc.callback.mixup',
  'fastc.callback.hook', 'fastc.testing',
  'fastc.callback.fp16', -- MixedPrecision, learn:to_fp16/to_bf16/to_fp32
  'fastc.ext_data', -- data layer and vision data (lua/fastc/data, lua/fastc/vision)
  'fastc.ext_vision', -- vision models, vision_learner, unet_learner, interpretation
}
for _, name in ipairs(extensions) do
  if package.searchpath(name, package.path) then require(name)(fc, Tensor, H) end
end

require('ffi').metatype('fc_handle', H.mt)
return fc
