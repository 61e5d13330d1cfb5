-- tests/lua/fastlua_spec.lua — the fastlua executable from the outside:
-- options, the `arg` table, exit statuses, stdin scripts, the piped REPL.
-- Runs build/fastlua (or $FASTLUA) through the shell.

local function repo_root()
  local src = debug.getinfo(1, 'S').source
  local dir = src:sub(1, 1) == '@' and src:sub(2):match('^(.*)/tests/lua/[^/]*$')
  return dir or '.'
end

local ROOT = repo_root()
local FASTLUA = os.getenv('FASTLUA') or ROOT .. '/build/fastlua'

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

local function spit(path, text)
  local f = assert(io.open(path, 'wb'))
  f:write(text)
  f:close()
end

-- Runs fastlua with the given argument list and stdin text; returns
-- stdout, stderr and the exit status. `env` is a shell prefix (A=b ...).
local function run(args, stdin, env)
  local tmp = os.tmpname()
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = quote(a) end
  spit(tmp .. '.in', stdin or '')
  local cmd = string.format('%s %s %s <%s >%s 2>%s; echo $? >%s', env or '', quote(FASTLUA),
    table.concat(quoted, ' '), tmp .. '.in', tmp .. '.out', tmp .. '.err', tmp .. '.rc')
  os.execute(cmd)
  local out, err, rc = slurp(tmp .. '.out'), slurp(tmp .. '.err'), tonumber(slurp(tmp .. '.rc'))
  for _, ext in ipairs { '', '.in', '.out', '.err', '.rc' } do os.remove(tmp .. ext) end
  return out, err, rc
end

local function has(s, piece) return s:find(piece, 1, true) ~= nil end

local function script(text)
  local path = os.tmpname() .. '.lua'
  spit(path, text)
  return path
end

describe('fastlua options', function()
  it('-v prints the fastc and LuaJIT versions', function()
    local out, _, rc = run { '-v' }
    assert.are.equal(0, rc)
    assert.truthy(out:match('^fastc %d+%.%d+%.%d+ %(LuaJIT 2%.%d'), out)
    local ok, fc = pcall(require, 'fastc')
    if ok then assert.truthy(has(out, 'fastc ' .. fc.version .. ' ('), out) end
  end)

  it('-e runs code and may repeat, in order', function()
    local out, err, rc = run { '-e', 'x = 20', '-e', 'print(x * 2 + 2)' }
    assert.are.equal('', err)
    assert.are.equal(0, rc)
    assert.are.equal('42\n', out)
  end)

  it('-e errors exit 1 with the message', function()
    local out, err, rc = run { '-e', 'error("nope")', '-e', 'print("not reached")' }
    assert.are.equal(1, rc)
    assert.are.equal('', out)
    assert.truthy(has(err, 'nope'), err)
  end)

  it('-h prints the usage on stdout', function()
    local out, _, rc = run { '-h' }
    assert.are.equal(0, rc)
    assert.truthy(has(out, 'usage: fastlua'), out)
  end)

  it('an unknown option prints the usage on stderr and exits 1', function()
    local out, err, rc = run { '-Q' }
    assert.are.equal(1, rc)
    assert.are.equal('', out)
    assert.truthy(has(err, "unknown option '-Q'"), err)
    assert.truthy(has(err, 'usage: fastlua'), err)
  end)

  it('an option missing its argument is an error', function()
    local _, err, rc = run { '-e' }
    assert.are.equal(1, rc)
    assert.truthy(has(err, "'-e' needs an argument"), err)
  end)

  it('-l requires a library into a global', function()
    local out, _, rc = run { '-l', 'string', '-e', 'print(type(string.format))' }
    assert.are.equal(0, rc)
    assert.are.equal('function\n', out)
  end)
end)

describe('fastlua scripts', function()
  it('get the standard arg table and ... ', function()
    local path = script [[
      print(arg[-1] == nil, arg[0] ~= nil, arg[1], arg[2], select('#', ...), (...))
      print(arg[-1] and arg[-1]:match('fastlua$') ~= nil)
    ]]
    local out, err, rc = run({ path, 'a b', 'c' })
    os.remove(path)
    assert.are.equal('', err)
    assert.are.equal(0, rc)
    assert.are.equal('false\ttrue\ta b\tc\t2\ta b\ntrue\n', out)
  end)

  it('see the options before them at negative indices', function()
    local path = script 'print(arg[-2], arg[-1] == "-e x=1" and "" or arg[-1], arg[0] ~= nil, x)'
    local out, _, rc = run({ '-e', 'x=1', path })
    os.remove(path)
    assert.are.equal(0, rc)
    assert.are.equal('-e\tx=1\ttrue\t1\n', out)
  end)

  it('exit 1 with the message and a traceback when they fail', function()
    local path = script 'local x = 1\nerror("boom " .. x)\n'
    local out, err, rc = run { path }
    os.remove(path)
    assert.are.equal(1, rc)
    assert.are.equal('', out)
    assert.truthy(has(err, ':2: boom 1'), err)
    assert.truthy(has(err, 'stack traceback'), err)
  end)

  it('report a missing file', function()
    local _, err, rc = run { '/nonexistent/x.lua' }
    assert.are.equal(1, rc)
    assert.truthy(has(err, 'cannot open /nonexistent/x.lua'), err)
  end)

  it('show a non-string error through its __tostring', function()
    local code = 'error(setmetatable({}, {__tostring = function() return "custom!" end}))'
    local _, err, rc = run { '-e', code }
    assert.are.equal(1, rc)
    assert.truthy(has(err, 'custom!'), err)
  end)

  it('exit 1 silently on error() with no value, as lua 5.1 does', function()
    local out, err, rc = run { '-e', 'io.write("x") error()' }
    assert.are.equal(1, rc)
    assert.are.equal('x', out)
    assert.are.equal('', err)
  end)

  it('can os.exit with a status', function()
    local out, _, rc = run { '-e', 'io.write("bye") os.exit(3)' }
    assert.are.equal(3, rc)
    assert.are.equal('bye', out)
  end)

  it('- runs standard input with arguments', function()
    local out, _, rc = run({ '-', 'p', 'q' }, 'print(arg[0], select("#", ...), ...)\n')
    assert.are.equal(0, rc)
    assert.are.equal('-\t2\tp\tq\n', out)
  end)

  it('with no arguments and piped stdin run stdin as a script', function()
    local input = 'local t = {}\nfor i = 1, 3 do t[i] = i * i end\nprint(table.concat(t, ","))\n'
    local out, err, rc = run({}, input)
    assert.are.equal('', err)
    assert.are.equal(0, rc)
    assert.are.equal('1,4,9\n', out)
  end)

  it('find the repo Lua package and libfastc through ffi.C', function()
    local out, err, rc = run { '-e', [[
      print(package.searchpath('fastc', package.path):match('lua/fastc/init%.lua$') ~= nil)
      local fc = require 'fastc'
      print(pcall(function() return require('ffi').C.fc_version end))
      print(fc.ones(2, 2):sum():item())
    ]] }
    assert.are.equal('', err)
    assert.are.equal(0, rc)
    local lines = {}
    for l in out:gmatch('[^\n]+') do lines[#lines + 1] = l end
    assert.are.equal('true', lines[1])
    assert.truthy(lines[2]:match('^true'), lines[2])
    assert.are.equal('4', lines[3])
  end)

  it('FASTC_LUA_PATH comes first in package.path', function()
    local env = 'FASTC_LUA_PATH=/x/y/?.lua'
    local out, _, rc = run({ '-e', 'print(package.path:sub(1, 12))' }, nil, env)
    assert.are.equal(0, rc)
    assert.are.equal('/x/y/?.lua;/\n', out)
  end)

  it('stop on Ctrl-C with "interrupted"', function()
    local tmp = os.tmpname()
    -- collectgarbage is not compiled, so the loop keeps passing the hook
    local loop = quote('while true do collectgarbage("count") end')
    local sh = '%s -e %s 2>%s & p=$!; sleep 0.5; kill -INT $p; wait $p; echo $? >%s.rc'
    os.execute(sh:format(quote(FASTLUA), loop, tmp, tmp))
    local err, rc = slurp(tmp), tonumber(slurp(tmp .. '.rc'))
    os.remove(tmp); os.remove(tmp .. '.rc')
    assert.are.equal(1, rc)
    assert.truthy(has(err, 'interrupted'), err)
  end)
end)

describe('fastlua -m', function()
  it('runs require(module) with the rest in arg', function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute('mkdir -p ' .. quote(dir .. '/recipes'))
    spit(dir .. '/recipes/hello.lua', 'print("hello", ..., arg[0], arg[1], arg[2], arg[-1])\n')
    local out, err, rc = run({ '-m', 'recipes.hello', '--epochs', '3' }, nil,
      'FASTC_LUA_PATH=' .. quote(dir .. '/?.lua'))
    os.execute('rm -rf ' .. quote(dir))
    assert.are.equal('', err)
    assert.are.equal(0, rc)
    assert.are.equal('hello\trecipes.hello\trecipes.hello\t--epochs\t3\t-m\n', out)
  end)

  it('fails with exit 1 for a missing module', function()
    local _, err, rc = run { '-m', 'no.such.module' }
    assert.are.equal(1, rc)
    assert.truthy(has(err, "module 'no.such.module' not found"), err)
  end)
end)

describe('the piped REPL', function()
  it('prints bare expressions and keeps going after errors', function()
    local out, err, rc = run({ '-i' }, 'x = 20\nx + 1\nerror("bad")\nprint(x * 2)\n=x, nil, "s"\n')
    assert.are.equal(0, rc)
    assert.are.equal('21\n40\n20\tnil\ts\n', out)
    assert.truthy(has(err, 'stdin:1: bad'), err)
    assert.truthy(has(err, 'stack traceback'), err)
  end)

  it('reads multi-line chunks and expressions', function()
    local input = 'for i = 1, 2 do\n  print(i)\nend\n1 +\n2\nlocal s = [[a\nb]] print(#s)\n'
    local out, err = run({ '-i' }, input)
    assert.are.equal('', err)
    assert.are.equal('1\n2\n3\n3\n', out)
  end)

  it('reports a syntax error and a chunk cut off by the end of input', function()
    local out, err = run({ '-i' }, 'x = = 1\nprint("on")\nfor i = 1, 2 do\n')
    assert.are.equal('on\n', out)
    assert.truthy(has(err, "unexpected symbol near '='"), err)
    assert.truthy(has(err, "'end' expected"), err)
  end)

  it('has the global fc and pretty-prints tensors', function()
    local out, err = run({ '-i' }, 'fc.ones(2, 3)\nfc.ones(2) + fc.ones(3)\nprint("still here")\n')
    assert.truthy(has(out, 'tensor([[1., 1., 1.],'), out)
    assert.truthy(has(out, 'still here'), out)
    assert.truthy(has(err, 'cannot broadcast'), err)
  end)

  it('runs the tensor tour line by line, as the script does', function()
    local tour = ROOT .. '/examples/tensor_tour.lua'
    local script_out, script_err, rc1 = run { tour }
    local repl_out, repl_err, rc2 = run({ '-i' }, slurp(tour))
    assert.are.equal(0, rc1)
    assert.are.equal(0, rc2)
    assert.are.equal('', script_err)
    assert.are.equal('', repl_err) -- no line failed
    assert.truthy(has(repl_out, 'stdin:1: add: shapes [3,4] and [5] cannot broadcast'), repl_out)
    -- Identical but for where the caught errors say they were raised.
    local where = '[^\n]*tensor_tour%.lua:%d+: '
    assert.are.equal(script_out:gsub(where, ''), (repl_out:gsub('stdin:1: ', '')))
  end)

  it('-i runs the script first and sees its globals', function()
    local path = script 'answer = 42\n'
    local out, _, rc = run({ '-i', path }, 'answer\n')
    os.remove(path)
    assert.are.equal(0, rc)
    assert.are.equal('42\n', out)
  end)
end)
