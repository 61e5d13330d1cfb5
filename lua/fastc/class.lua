-- lua/fastc/class.lua — one small class helper: plain metatables.
--
--   local Point = class('Point')
--   function Point:init(x, y) self.x, self.y = x, y end
--   local Point3 = Point:extend('Point3')
--   function Point3:init(x, y, z) Point.init(self, x, y); self.z = z end
--   local p = Point3(1, 2, 3)       -- p:is_a(Point) == true
--
-- Metamethods (__index functions, __newindex, __tostring, __call, ...) are
-- copied down at extend time, since Lua looks them up raw in the metatable.
local METAMETHODS = { '__index', '__newindex', '__tostring', '__call', '__len', '__eq',
  '__add', '__sub', '__mul', '__div', '__unm', '__concat', '__lt', '__le' }

local function instantiate(cls, ...)
  local obj = setmetatable({}, cls)
  if cls.init then cls.init(obj, ...) end
  return obj
end

local function class(name, parent)
  local cls = { __name = name, super = parent }
  if parent then
    for _, m in ipairs(METAMETHODS) do
      if rawget(parent, m) ~= nil and m ~= '__index' then cls[m] = parent[m] end
    end
    -- an __index function of the parent is inherited as is; a table
    -- __index (the class itself) becomes the new class
    local pidx = rawget(parent, '__index')
    cls.__index = type(pidx) == 'function' and pidx or cls
  else
    cls.__index = cls
  end
  setmetatable(cls, { __index = parent, __call = instantiate,
    __tostring = function() return 'class ' .. name end })
  return cls
end

-- Class methods every class gets.
local Object = class('Object')
function Object.extend(cls, name) return class(name, cls) end
function Object.is_a(obj, cls)
  local c = getmetatable(obj)
  while c do
    if c == cls then return true end
    c = rawget(c, 'super')
  end
  return false
end
function Object.class_name(obj) return getmetatable(obj).__name end

return function(name, parent) return class(name, parent or Object) end
