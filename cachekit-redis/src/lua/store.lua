-- Stores a value the way every cachekit write does; prepended to the
-- scripts that end by storing. `px` is the PX milliseconds, '' (no expiry)
-- or '0' (expired at once: the key is deleted). Returns 1.
local function store(key, value, px)
  if px == '0' then
    redis.call('DEL', key)
  elseif px == '' then
    redis.call('SET', key, value)
  else
    redis.call('SET', key, value, 'PX', px)
  end
  return 1
end
