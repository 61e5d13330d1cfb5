-- lua/fastc/ext_vision.lua — vision applications on top of the data layer
-- and the Learner: fastai's layers (fc.layers), the model zoo
-- (fc.vision.models), vision_learner / unet_learner, and
-- ClassificationInterpretation with learn:show_results().
return function(fc, Tensor, H)
  if not (fc.vision and fc.Learner) then return end
  require('fastc.vision.layers')(fc)
  require('fastc.vision.models')(fc)
  require('fastc.vision.learner')(fc)
  require('fastc.vision.interpret')(fc)
end
