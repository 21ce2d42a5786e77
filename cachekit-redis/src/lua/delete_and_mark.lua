-- `KEYS[1]` key, `KEYS[2]` its slot's counter: removes the key, counts a
-- deletion (the counter lives a day past the last one: a computation
-- that read it would have to run that long to miss its expiry); how many
-- keys were removed.
local removed = redis.call('UNLINK', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], 86400000)
return removed
