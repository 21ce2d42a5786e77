-- A value and its remaining lifetime in one single-key command: a key of
-- another type reads as missing. `KEYS[1]` the key.
local value = redis.pcall('GET', KEYS[1])
if type(value) == 'table' and value.err then return {false, -2} end
return {value, redis.call('PTTL', KEYS[1])}
