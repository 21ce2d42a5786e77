-- `KEYS[1]` key, `KEYS[2]` its slot's counter, `KEYS[3]` (optional) the
-- clears counter; `ARGV[1]` value, `ARGV[2]` PX as for store(),
-- `ARGV[3]`, `ARGV[4]` the counters as read. 1 when stored.
-- Ends with store(), defined in store.lua (prepended).
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[3] then return 0 end
if KEYS[3] and (redis.call('GET', KEYS[3]) or '0') ~= ARGV[4] then return 0 end
return store(KEYS[1], ARGV[1], ARGV[2])
