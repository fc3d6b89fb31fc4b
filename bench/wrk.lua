-- wrk script for bench/hotpath.py: replay pre-signed requests, each exactly once.
--
-- wrk ... -s bench/wrk.lua URL -- REQUESTS_FILE [RATE]
--
-- REQUESTS_FILE holds raw HTTP/1.1 requests, each preceded by its length in bytes and
-- a newline (the bench signs them with the SDK's own code). Every request carries a
-- fresh nonce, so none may be sent twice: when the file is used up the thread stops.
-- RATE (requests/s, optional) paces the requests on a fixed schedule across all
-- connections; without it every connection sends as fast as answers come back.
-- done() prints the totals and the whole latency histogram for the bench to merge.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } clue_timespec;
int clock_gettime(int clk_id, clue_timespec *tp);
]]
local now_ts = ffi.new("clue_timespec[1]")
local function now_ms()
  ffi.C.clock_gettime(1, now_ts)  -- CLOCK_MONOTONIC
  return tonumber(now_ts[0].tv_sec) * 1000 + tonumber(now_ts[0].tv_nsec) / 1e6
end

local requests_ = {}
local next_index = 0
local rate = 0
local start = nil
local scheduled = 0

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  local pos = 1
  while pos <= #data do
    local newline = string.find(data, "\n", pos, true)
    local length = tonumber(string.sub(data, pos, newline - 1))
    requests_[#requests_ + 1] = string.sub(data, newline + 1, newline + length)
    pos = newline + 1 + length
  end
  rate = tonumber(args[2] or "0") or 0
end

function delay()
  if rate <= 0 then return 0 end
  local now = now_ms()
  if start == nil then start = now end
  local due = start + scheduled * 1000 / rate
  scheduled = scheduled + 1
  if due <= now then return 0 end
  return math.floor(due - now)
end

function request()
  next_index = next_index + 1
  if next_index > #requests_ then
    wrk.thread:stop()
    -- Never sent twice on purpose: the thread is stopping. If it does go out, the
    -- server refuses it as a replay and the bench reports the error.
    return requests_[#requests_]
  end
  return requests_[next_index]
end

function done(summary, latency, _requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout))
  for i = 1, #latency do
    local value, count = latency(i)
    if count and count > 0 then io.write("H ", value, " ", count, "\n") end
  end
end
