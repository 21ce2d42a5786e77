-- Extends the lock only if it still holds our token.
-- `KEYS[1]` lock key; `ARGV[1]` token; `ARGV[2]` lease in milliseconds.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
