-- `KEYS[1]` key; `ARGV[1]` 'absent' or 'value'; `ARGV[2]` expected value;
-- `ARGV[3]` new value; `ARGV[4]` PX milliseconds, '' (no expiry) or '0'
-- (expired at once: deleted). A key of another type
-- reads as absent, as it does for `get`; SET replaces it.
-- Ends with store(), defined in store.lua (prepended).
local current = false
if redis.call('TYPE', KEYS[1])['ok'] == 'string' then
  current = redis.call('GET', KEYS[1])
end
if ARGV[1] == 'absent' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
return store(KEYS[1], ARGV[3], ARGV[4])
