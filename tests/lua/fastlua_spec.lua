-- tests/lua/fastlua_spec.lua — the fastlua executable, driven as a user would.
local FASTLUA = os.getenv('FASTLUA') or 'build/fastlua'

local function run(cmd)
  local p = io.popen(cmd .. ' 2>&1; echo "exit=$?"')
  local out = p:read('*a')
  p:close()
  local code = tonumber(out:match('exit=(%d+)%s*$'))
  return out:gsub('exit=%d+%s*$', ''), code
end

local function tmpfile(text)
  local name = os.tmpname()
  local f = io.open(name, 'w')
  f:write(text)
  f:close()
  return name
end

describe('fastlua', function()
  it('prints its version', function()
    local out, code = run(FASTLUA .. ' -v')
    assert.are.equal(0, code)
    assert.truthy(out:find('^fastc %d+%.%d+%.%d+ %(LuaJIT'))
  end)

  it('runs -e code with fastc available', function()
    local out, code = run(FASTLUA .. [[ -e "local fc = require 'fastc'; print((fc.ones(2) * 3):sum():item())"]])
    assert.are.equal(0, code)
    assert.are.equal('6\n', out)
  end)

  it('passes the standard arg table and ... to scripts', function()
    local script = tmpfile('print(arg[0] ~= nil, arg[1], arg[2], select("#", ...))')
    local out, code = run(FASTLUA .. ' ' .. script .. ' one two')
    os.remove(script)
    assert.are.equal(0, code)
    assert.are.equal('true\tone\ttwo\t2\n', out)
  end)

  it('exits 1 with the message and a traceback on error', function()
    local script = tmpfile('local fc = require "fastc"\nlocal x = fc.ones(2) + fc.ones(3)\n')
    local out, code = run(FASTLUA .. ' ' .. script)
    os.remove(script)
    assert.are.equal(1, code)
    assert.truthy(out:find(':2: add: shapes [2] and [3] cannot broadcast', 1, true))
    assert.truthy(out:find('stack traceback', 1, true))
  end)

  it('runs a script from standard input', function()
    local out, code = run('echo "print(40 + 2)" | ' .. FASTLUA .. ' -')
    assert.are.equal(0, code)
    assert.are.equal('42\n', out)
  end)

  it('runs -m module with arguments', function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute('mkdir -p ' .. dir)
    local f = io.open(dir .. '/hello_mod.lua', 'w')
    f:write('print("module", arg[1])')
    f:close()
    local out, code = run('FASTC_LUA_PATH="' .. dir .. '/?.lua" ' .. FASTLUA .. ' -m hello_mod x')
    os.execute('rm -rf ' .. dir)
    assert.are.equal(0, code)
    assert.are.equal('module\tx\n', out)
  end)

  it('rejects unknown options', function()
    local out, code = run(FASTLUA .. ' --bogus')
    assert.are.equal(1, code)
    assert.truthy(out:find("unknown option '--bogus'", 1, true))
  end)

  it('REPL: prints expressions, continues after errors, reads multi-line input', function()
    local input = tmpfile(table.concat({
      'x = fc.ones(2, 2)',
      'x:sum():item()',
      '=1 + 1',
      'error("boom")',
      'for i = 1, 2 do',
      '  io.write(i, ";")',
      'end',
      'x:size(1)',
    }, '\n') .. '\n')
    local out, code = run(FASTLUA .. ' -i < ' .. input)
    os.remove(input)
    assert.are.equal(0, code)
    assert.truthy(out:find('4\n2\n', 1, true))
    assert.truthy(out:find('boom', 1, true))
    assert.truthy(out:find('1;2;2\n', 1, true))
  end)

  it('REPL: the tensor tour runs line by line', function()
    local out, code = run(FASTLUA .. ' -i < examples/tensor_tour.lua')
    assert.are.equal(0, code)
    assert.truthy(out:find('add: shapes [2,3] and [4] cannot broadcast', 1, true))
    assert.truthy(out:find('[float32 tensor, size 3x2]', 1, true))
    assert.is_nil(out:find('fastlua: ', 1, true)) -- no line failed
  end)
end)
