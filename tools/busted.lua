-- Runs busted inside fastlua (so specs see ffi.C and the repo's lua/ dir).
require 'busted.runner'({ standalone = false })
