-- A busted output handler: the default's failure details, then one plain
-- closing line "N passed, N failed" for tools/run_tests.sh to add up.
return function(options)
  local busted = require 'busted'
  local handler = require 'busted.outputHandlers.utfTerminal'(options)
  local passed, failed = 0, 0
  busted.subscribe({ 'test', 'end' }, function(element, parent, status)
    if status == 'success' then passed = passed + 1
    elseif status == 'failure' or status == 'error' then failed = failed + 1 end
    return nil, true
  end)
  busted.subscribe({ 'error', 'file' }, function() failed = failed + 1; return nil, true end)
  busted.subscribe({ 'error', 'describe' }, function() failed = failed + 1; return nil, true end)
  busted.subscribe({ 'suite', 'end' }, function()
    io.write('\n', passed, ' passed, ', failed, ' failed\n')
    return nil, true
  end)
  return handler
end
