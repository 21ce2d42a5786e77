-- Stores the value unless a string is there; a key of another type
-- (hash, list...) counts as absent, as a cache read would have missed it,
-- and SET replaces it. `KEYS[1]` key; `ARGV[1]` value; `ARGV[2]` PX milliseconds,
-- '' (no expiry) or '0' (expired at once: the key is deleted, 1 returned).
-- Ends with store(), defined in store.lua (prepended).
if redis.call('TYPE', KEYS[1])['ok'] == 'string' then return 0 end
return store(KEYS[1], ARGV[1], ARGV[2])
